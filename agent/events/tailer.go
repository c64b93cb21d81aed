package events

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// Tailer reads sshd's log through a Source, turns it into login events and
// appends them to the spool with the position after the line that completed
// them, so that a restart resumes after the last event spooled: none is
// spooled twice, none skipped.
type Tailer struct {
	Source Source
	Spool  *Spool
	Logger *slog.Logger
	// Now stamps lines of a log without times (time.Now if nil).
	Now func() time.Time
	// CheckpointEvery is how often at most the position is recorded while
	// no login happens (10s if zero), so that a restart does not read
	// again everything since the last login. It is recorded only between
	// connections, so that none is resumed half-way.
	CheckpointEvery time.Duration
	// FullWait is how long the tailer waits for room in a full spool
	// before trying again (1s if zero).
	FullWait time.Duration
}

// Run tails until ctx ends; a failing source or spool is retried.
func (t *Tailer) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := t.run(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Logger.Error("reading sshd's log failed; starting again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func (t *Tailer) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tailer) run(ctx context.Context) error {
	st, err := t.Spool.State()
	if err != nil {
		return err
	}
	every := t.CheckpointEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	tr := newTracker()
	hasPos := st.HasPosition
	var lastCheckpoint time.Time
	err = t.Source.Run(ctx, st.Position, func(l Line) error {
		var e *api.LoginEvent
		if l.Text != "" {
			at := l.Time
			if at.IsZero() {
				at = t.now()
			}
			e = tr.feed(l, at)
		}
		if e != nil {
			probe := *e
			probe.Seq = 1
			if err := probe.Validate(); err != nil {
				t.Logger.Warn("dropping a login event the cluster would refuse", "err", err, "user", e.User, "source", e.Source)
				e = nil
			}
		}
		if e != nil {
			return t.spool(ctx, *e, l.Pos)
		}
		if !hasPos || (tr.idle() && t.now().Sub(lastCheckpoint) >= every) {
			if err := t.Spool.Checkpoint(l.Pos); err != nil {
				return err
			}
			hasPos, lastCheckpoint = true, t.now()
		}
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// spool appends e, waiting while the spool is full: sshd's log keeps the
// line meanwhile, and the position does not move past it.
func (t *Tailer) spool(ctx context.Context, e api.LoginEvent, pos Position) error {
	wait := t.FullWait
	if wait <= 0 {
		wait = time.Second
	}
	for warned := false; ; warned = true {
		out, err := t.Spool.Append([]api.LoginEvent{e}, pos)
		if err == nil {
			s := out[0]
			t.Logger.Info("login", "seq", s.Seq, "outcome", s.Outcome, "user", s.User, "source", s.Source, "port", s.Port,
				"key_id", s.KeyID, "serial", s.Serial, "reason", s.Reason)
			return nil
		}
		if !errors.Is(err, ErrSpoolFull) {
			return err
		}
		if !warned {
			t.Logger.Warn("the event spool is full: reading sshd's log pauses until the cluster takes events again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
