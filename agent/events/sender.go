package events

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// Poster delivers a batch of events to the cluster; an empty batch asks for
// the last seq the cluster recorded. A *client.Client is one: it posts to
// the current node and moves on to the next after a failure.
type Poster interface {
	PostEvents(ctx context.Context, events []api.LoginEvent) (*api.AgentEventsResponse, error)
}

const (
	// maxBackoff bounds the wait between two failed deliveries; a refusal
	// (4xx: a bug, or an agent newer than the cluster) waits longer.
	maxBackoff        = 30 * time.Second
	maxRefusedBackoff = 5 * time.Minute
	// recheckEvery wakes an idle sender in case a notification was missed.
	recheckEvery = 30 * time.Second
)

// Sender delivers the spool to the cluster in order, in batches, and
// forgets only what the cluster acknowledged. Failures are retried with
// backoff and jitter until ctx ends: nothing is dropped, not even an event
// the cluster refuses (the agent validated it as the cluster does, so a
// refusal is a version mismatch an operator must fix, and the events wait).
type Sender struct {
	Spool  *Spool
	Poster Poster
	Logger *slog.Logger
	// Batch is the most events one request carries (api.MaxLoginEventBatch
	// if zero).
	Batch int
	// MinBackoff is the first wait after a failure (200ms if zero).
	MinBackoff time.Duration

	backoff  time.Duration
	failures int
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	batch := s.Batch
	if batch <= 0 || batch > api.MaxLoginEventBatch {
		batch = api.MaxLoginEventBatch
	}
	for ctx.Err() == nil {
		st, err := s.Spool.State()
		if err != nil {
			s.fail(ctx, "read the event spool", err, false)
			continue
		}
		if !st.Synced {
			s.sync(ctx)
			continue
		}
		pending, err := s.Spool.Pending(batch)
		if err != nil {
			s.fail(ctx, "read the event spool", err, false)
			continue
		}
		if len(pending) == 0 {
			select {
			case <-ctx.Done():
			case <-s.Spool.Notify():
			case <-time.After(recheckEvery):
			}
			continue
		}
		s.deliver(ctx, pending)
	}
}

// sync asks the cluster for the last seq it recorded from this server
// before the spool's first delivery, and numbers the spool after it.
func (s *Sender) sync(ctx context.Context) {
	resp, err := s.Poster.PostEvents(ctx, nil)
	if err != nil {
		s.fail(ctx, "ask the cluster for the last login event it recorded", err, refused(err))
		return
	}
	s.ok()
	changed, err := s.Spool.Rebase(resp.LastSeq)
	if err != nil {
		s.fail(ctx, "renumber the event spool", err, false)
		return
	}
	if changed {
		s.Logger.Info("login events renumbered after those the cluster has", "cluster_last_seq", resp.LastSeq)
	}
}

func (s *Sender) deliver(ctx context.Context, pending []api.LoginEvent) {
	first, last := pending[0].Seq, pending[len(pending)-1].Seq
	resp, err := s.Poster.PostEvents(ctx, pending)
	if err != nil {
		s.fail(ctx, "deliver login events", err, refused(err))
		return
	}
	s.ok()
	// Read after the answer: the tailer numbers events meanwhile, and only
	// a seq beyond all it has numbered is one this spool never used.
	st, err := s.Spool.State()
	if err != nil {
		s.fail(ctx, "read the event spool", err, false)
		return
	}
	if nextSeq := st.NextSeq; resp.LastSeq >= nextSeq {
		// The cluster has seqs this spool never used: it is not the spool
		// the cluster's record was written from. Renumber, send again.
		s.Logger.Warn("the cluster has recorded login events this spool never numbered; renumbering the undelivered ones",
			"cluster_last_seq", resp.LastSeq, "spool_next_seq", nextSeq)
		if _, err := s.Spool.Rebase(resp.LastSeq); err != nil {
			s.fail(ctx, "renumber the event spool", err, false)
		}
		return
	}
	upTo := min(resp.LastSeq, last)
	if upTo < last {
		s.Logger.Error("the cluster acknowledged only part of a batch", "first", first, "last", last, "cluster_last_seq", resp.LastSeq)
	}
	if upTo < first {
		s.fail(ctx, "deliver login events", fmt.Errorf("the cluster acknowledged none of seqs %d-%d", first, last), true)
		return
	}
	if err := s.Spool.Ack(upTo); err != nil {
		s.fail(ctx, "forget delivered login events", err, false)
		return
	}
	s.Logger.Info("login events delivered", "first_seq", first, "last_seq", upTo, "accepted", resp.Accepted, "duplicates", resp.Duplicates)
}

// refused reports whether the cluster refused a request (4xx).
func refused(err error) bool {
	s := client.StatusOf(err)
	return s >= 400 && s < 500
}

func (s *Sender) ok() {
	if s.failures > 0 {
		s.Logger.Info("the cluster takes login events again", "after_failures", s.failures)
	}
	s.backoff, s.failures = 0, 0
}

// fail logs a failure (the first of a run as a warning, later ones at
// debug, so that an outage does not flood the log) and waits.
func (s *Sender) fail(ctx context.Context, what string, err error, refused bool) {
	if ctx.Err() != nil {
		return
	}
	s.failures++
	limit, minimum := maxBackoff, s.MinBackoff
	if minimum <= 0 {
		minimum = 200 * time.Millisecond
	}
	if refused {
		limit = maxRefusedBackoff
	}
	s.backoff = min(max(2*s.backoff, minimum), limit)
	sleep := s.backoff/2 + time.Duration(rand.Int64N(int64(s.backoff)/2+1))
	switch {
	case refused:
		s.Logger.Error("the cluster refused login events; they stay spooled", "what", what, "err", err, "retry_in", sleep.Round(time.Millisecond))
	case s.failures == 1:
		s.Logger.Warn("cannot "+what+"; events stay spooled and are retried", "err", err)
	default:
		s.Logger.Debug("cannot "+what, "failures", s.failures, "err", err, "retry_in", sleep.Round(time.Millisecond))
	}
	select {
	case <-ctx.Done():
	case <-time.After(sleep):
	}
}
