package auditlog

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// PruneStore is what the pruner needs of the replicated store.
type PruneStore interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	IsLeader() bool
}

// Retention bounds the log (0: no bound); the leader prunes what is past
// either bound every Interval.
type Retention struct {
	MaxAge    time.Duration
	MaxEvents int64
	Interval  time.Duration
	// ExportSinks are the audit export sinks configured on this node
	// (audit_export.sinks, by name): nothing a sink has not yet taken is
	// pruned, so an exporter behind (a sink down for a day) loses nothing.
	// A sink with no cursor yet holds the whole log. Every cursor recorded
	// in raft holds the log too, configured here or not (another node's
	// sink, or one removed from the configuration until an operator
	// removes its cursor: audit export-cursors rm).
	ExportSinks []string
}

// Pruner applies the retention on the leader: it records the retention in
// force (an audit_retention.update event when it changed) and prunes the
// oldest events behind a checkpoint signed with the cluster's audit key.
// Followers do nothing; a new leader takes over at its next look.
type Pruner struct {
	store  PruneStore
	key    ed25519.PrivateKey
	ret    Retention
	node   string
	logger *slog.Logger
	now    func() time.Time
	// after is the wait between looks (time.After).
	after func(time.Duration) <-chan time.Time
	// lastPrune is when this node last pruned (as leader).
	lastPrune time.Time
}

// clockMargin is how far past the newest event's time the pruner's "now"
// may be (clock skew between the nodes that recorded events and this one).
const clockMargin = time.Minute

// lookEvery bounds the wait between looks at leadership and retention, so
// that a new leader or a changed configuration is recorded soon.
const lookEvery = time.Minute

// NewPruner returns a pruner; Run runs it.
func NewPruner(store PruneStore, key ed25519.PrivateKey, ret Retention, node string, logger *slog.Logger) *Pruner {
	return &Pruner{store: store, key: key, ret: ret, node: node, logger: logger, now: time.Now, after: time.After}
}

// Run looks every minute (or Interval, if shorter) until ctx ends.
func (p *Pruner) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.after(min(lookEvery, p.ret.Interval)):
		}
		if !p.store.IsLeader() {
			continue
		}
		if err := p.Once(ctx, p.now().Sub(p.lastPrune) >= p.ret.Interval); err != nil && ctx.Err() == nil {
			p.logger.Error("audit retention", "err", err)
		}
	}
}

// Once records the retention when it changed and, with prune, prunes what
// is past it.
func (p *Pruner) Once(ctx context.Context, prune bool) error {
	st := p.store.State()
	_, as, err := st.AuditStateOf(nil)
	if err != nil {
		return err
	}
	now, err := p.clock(st)
	if err != nil {
		return err
	}
	want := raftstore.AuditRetention{MaxAge: p.ret.MaxAge, MaxEvents: p.ret.MaxEvents}
	if as.Retention != want {
		if _, err := p.store.Apply(ctx, &raftstore.AuditRetentionSet{Retention: want, Node: p.node, Now: now}); err != nil {
			return fmt.Errorf("record audit retention: %w", err)
		}
		p.logger.Info("audit retention recorded", "max_age", want.MaxAge, "max_events", want.MaxEvents)
	}
	if !prune {
		return nil
	}
	p.lastPrune = p.now()
	// The cut is made once per look; only a cut larger than one command
	// may prune is taken in steps. (Each prune adds an event: looking
	// again at once would prune one more event per prune, forever.)
	cut, err := p.cut(st, now)
	if err != nil || cut == 0 {
		return err
	}
	for {
		first, err := st.AuditFirst()
		if err != nil {
			return err
		}
		step := min(cut, first.Seq-1+raftstore.MaxAuditPrune)
		if err := p.prune(ctx, st, step, now); err != nil {
			return err
		}
		if step == cut {
			return nil
		}
	}
}

// clock is the pruner's "now": this node's clock, but never more than
// clockMargin past the newest event's time, so that a leader whose clock
// jumped ahead does not age out events that are not old. The pruner's own
// events (audit.prune, audit_retention.update) carry this time and are not
// counted as the newest, so that they do not move it on look after look.
func (p *Pruner) clock(st *raftstore.State) (time.Time, error) {
	now := p.now().UTC()
	_, last, err := st.AuditLast(nil)
	if err != nil || last == nil {
		return now, err
	}
	newest := last
	for seq, n := last.Seq, 0; n < maxOwnEvents && seq > 1 && isOwnEvent(newest); seq, n = seq-1, n+1 {
		_, evs, err := st.AuditSince(nil, seq-2, 1)
		if err != nil {
			return now, err
		}
		if len(evs) == 0 || evs[0].Seq != seq-1 {
			break // pruned: the checkpoint's side
		}
		newest = evs[0]
	}
	if limit := newest.Time.UTC().Add(clockMargin); now.After(limit) {
		return limit, nil
	}
	return now, nil
}

// maxOwnEvents bounds how far back clock looks past the pruner's own
// events for the newest event of anyone else.
const maxOwnEvents = 1000

// isOwnEvent reports whether e is one of the pruner's own bookkeeping
// events, which the state machine writes with the pruner's time.
func isOwnEvent(e *raftstore.AuditEvent) bool {
	return e.Type == raftstore.EventAuditPrune || e.Type == raftstore.EventAuditRetentionUpdate
}

// cut is the last seq to prune at now (0: none): the older of the bounds,
// never the newest event, never what an export cursor has not passed.
func (p *Pruner) cut(st *raftstore.State, now time.Time) (uint64, error) {
	if p.ret.MaxAge <= 0 && p.ret.MaxEvents <= 0 {
		return 0, nil
	}
	first, err := st.AuditFirst()
	if err != nil || first == nil {
		return 0, err
	}
	_, last, err := st.AuditLast(nil)
	if err != nil || last == nil {
		return 0, err
	}
	var cut uint64
	if n := p.ret.MaxEvents; n > 0 && last.Seq-first.Seq+1 > uint64(n) {
		cut = last.Seq - uint64(n)
	}
	if p.ret.MaxAge > 0 {
		// Times follow seqs closely but not strictly (an agent's clock, a
		// spill replayed late): the cut stops at the first event young
		// enough to keep, so nothing younger is pruned.
		before := now.Add(-p.ret.MaxAge)
		after, stop := max(first.Seq, cut+1)-1, false
		for !stop {
			_, page, err := st.AuditSince(nil, after, 1000)
			if err != nil {
				return 0, err
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				if !e.Time.Before(before) {
					stop = true
					break
				}
				cut = e.Seq
			}
			after = page[len(page)-1].Seq
		}
	}
	cut = min(cut, last.Seq-1)
	_, cursors, err := st.AuditExportCursors(nil)
	if err != nil {
		return 0, err
	}
	held := map[string]uint64{}
	for _, c := range cursors {
		held[c.Sink] = c.Seq
	}
	for _, sink := range p.ret.ExportSinks {
		if _, ok := held[sink]; !ok {
			held[sink] = 0 // no cursor yet: it took nothing
		}
	}
	for sink, delivered := range held {
		if delivered < cut {
			p.logger.Info("audit retention waits for an export sink", "sink", sink, "delivered_seq", delivered, "would_prune_through", cut)
			cut = delivered
		}
	}
	if cut < first.Seq {
		return 0, nil
	}
	return cut, nil
}

// prune replaces the events up to cut by a signed checkpoint.
func (p *Pruner) prune(ctx context.Context, st *raftstore.State, cut uint64, now time.Time) error {
	_, evs, err := st.AuditSince(nil, cut-1, 1)
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].Seq != cut {
		return fmt.Errorf("audit prune: event %d is not in the log", cut)
	}
	cp := raftstore.AuditCheckpoint{FirstSeq: 1, LastSeq: cut, Count: cut, Hash: evs[0].Hash, LastTime: evs[0].Time, Created: now}
	raftstore.SignAuditCheckpoint(&cp, p.key)
	if _, err := p.store.Apply(ctx, &raftstore.AuditPrune{Checkpoint: cp, Node: p.node, Now: now}); err != nil {
		return fmt.Errorf("audit prune to %d: %w", cut, err)
	}
	p.logger.Info("audit events pruned behind a signed checkpoint", "through_seq", cut, "hash", cp.Hash)
	return nil
}
