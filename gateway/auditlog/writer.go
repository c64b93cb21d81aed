// Package auditlog is the node's audit writer: it batches events into the
// replicated audit log and never drops one, but for those in memory when
// the node crashes.
package auditlog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Store is what the writer needs of the replicated store.
type Store interface {
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// Writer batches audit events into AuditAppend commands so that a burst of
// logins costs one raft round trip, not one each. It never drops an event:
//
//   - Record puts the event in a memory queue (queueSize events);
//   - when that is full, in the spill, a bounded queue on disk (SetSpill),
//     and every later event too until the spill is empty again, so that
//     events reach the log in the order they were recorded;
//   - when the spill is full too (or there is none), Record waits for room:
//     the caller is held back until the cluster takes events again.
//
// Batches the cluster refuses are retried until it takes them. When the
// node stops, what it could not write goes to the spill, replayed first on
// the next start. A crash loses what is in the memory queue and the batch
// being written (the QueueEvents gauge): Record does not wait for the disk.
type Writer struct {
	store  Store
	logger *slog.Logger
	now    func() time.Time
	// after is the wait between retries (time.After).
	after func(time.Duration) <-chan time.Time
	// stopTimeout bounds the last try of each batch when the node stops.
	stopTimeout time.Duration

	metrics *Metrics

	ch chan raftstore.AuditEventInput
	// inMemory counts events taken by Record into the memory queue and not
	// yet in raft nor on disk (the QueueEvents gauge).
	inMemory atomic.Int64
	// wake tells Run that the spill holds events.
	wake chan struct{}
	done chan struct{}

	mu sync.Mutex
	// room is signalled (Broadcast) when the spill or the queue has
	// room again, and when Run stops.
	room *sync.Cond
	// spill is the queue on disk; nil: none (Record waits instead).
	spill *spill
	// spilling: the spill holds events, so new ones go after them.
	spilling bool
	// full: a caller is waiting for room (for the log's sake: one line per
	// outage, not one per event).
	full    bool
	stopped bool
}

// queueSize is how many events wait in memory before the spill takes them.
const queueSize = 4096

// maxBatch is the most events one AuditAppend carries.
const maxBatch = 500

// New returns a writer into store; Run writes.
func New(store Store, logger *slog.Logger) *Writer {
	a := &Writer{store: store, logger: logger, now: time.Now, after: time.After, stopTimeout: 5 * time.Second, metrics: NewMetrics(nil),
		ch: make(chan raftstore.AuditEventInput, queueSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.room = sync.NewCond(&a.mu)
	return a
}

// SetMetrics makes the writer count into m (registered ones); call it
// before Run.
func (a *Writer) SetMetrics(m *Metrics) { a.metrics = m }

// SetSpill gives the writer its queue on disk in dir, bounded to maxBytes,
// its lines authenticated with key (gateway/ca AuditSpillKey); call it
// before Run. Events an earlier run left there are written first.
func (a *Writer) SetSpill(dir string, maxBytes int64, key []byte) error {
	s, err := openSpill(dir, maxBytes, key)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.spill = s
	if s.count > 0 || len(s.opened) > 0 {
		a.spilling = true
		a.logger.Warn("audit events left on disk by an earlier run; they are written first", "events", s.count, "dir", dir)
		a.notify()
	}
	a.gauges()
	return nil
}

// Record queues an event. It returns at once unless both queues are full:
// then it waits until the cluster takes events again (backpressure).
func (a *Writer) Record(typ, actor string, fields map[string]string) {
	ev := raftstore.AuditEventInput{Time: a.now().UTC(), Type: typ, Actor: actor, Fields: fields}
	a.mu.Lock()
	defer a.mu.Unlock()
	var waited time.Duration
	defer func() {
		if waited > 0 {
			a.metrics.BackpressureSeconds.Add(waited.Seconds())
		}
	}()
	for {
		if a.stopped {
			a.recordStopped(&ev)
			return
		}
		if !a.spilling {
			select {
			case a.ch <- ev:
				a.metrics.QueueEvents.Set(float64(a.inMemory.Add(1)))
				a.endFull()
				return
			default:
			}
			if a.spill != nil {
				a.spilling = true
				a.logger.Warn("audit queue full: the cluster is not taking events fast enough; events go to the spill on disk",
					"queued", queueSize, "dir", a.spill.dir)
			}
		}
		if a.spilling {
			err := a.spill.append(&ev, false)
			if err == nil {
				a.metrics.Spilled.Inc()
				a.gauges()
				a.notify()
				a.endFull()
				return
			}
			if !errors.Is(err, errSpillFull) {
				a.logger.Error("audit spill write failed; the caller waits", "err", err)
			}
		}
		if !a.full {
			a.full = true
			a.logger.Error("audit queues full: callers wait until the cluster takes events again", "queued", queueSize)
		}
		start := time.Now()
		a.room.Wait()
		waited += time.Since(start)
	}
}

// endFull notes that callers no longer wait. The caller holds a.mu.
func (a *Writer) endFull() {
	if a.full {
		a.full = false
		a.logger.Warn("audit queues have room again: callers no longer wait")
	}
}

// recordStopped keeps an event recorded after Run stopped: in the spill,
// past its bound (it is the last of them), or in the node's log when there
// is no spill. The caller holds a.mu.
func (a *Writer) recordStopped(ev *raftstore.AuditEventInput) {
	if a.spill != nil {
		err := a.spill.append(ev, true)
		if err == nil {
			a.metrics.Spilled.Inc()
			a.gauges()
			return
		}
		a.logger.Error("audit spill write failed", "err", err)
	}
	a.lost([]raftstore.AuditEventInput{*ev})
}

// lost logs events the writer could keep nowhere (no spill, or the disk
// failed), so that they are in the node's log instead of nowhere.
func (a *Writer) lost(evs []raftstore.AuditEventInput) {
	a.metrics.Dropped.WithLabelValues("not_replicated").Add(float64(len(evs)))
	for _, ev := range evs {
		a.logger.Error("audit event not replicated", "type", ev.Type, "actor", ev.Actor, "time", ev.Time, "fields", ev.Fields)
	}
}

// notify wakes Run for the spill.
func (a *Writer) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// gauges sets the spill's gauges. The caller holds a.mu.
func (a *Writer) gauges() {
	if a.spill != nil {
		a.metrics.SpillEvents.Set(float64(a.spill.count))
		a.metrics.SpillBytes.Set(float64(a.spill.size - a.spill.off))
	}
}

// Run writes batches until ctx ends, then writes or spills what is queued;
// Done is closed when it has.
func (a *Writer) Run(ctx context.Context) {
	defer close(a.done)
	for {
		// The memory queue first: while the spill holds events nothing
		// new enters the memory queue, so what is there is older.
		select {
		case ev := <-a.ch:
			if rest := a.flushMemory(ctx, ev); rest != nil {
				a.stop(rest)
				return
			}
			continue
		default:
		}
		if a.pendingSpill() {
			if !a.flushSpill(ctx) {
				a.stop(nil)
				return
			}
			continue
		}
		select {
		case ev := <-a.ch:
			if rest := a.flushMemory(ctx, ev); rest != nil {
				a.stop(rest)
				return
			}
		case <-a.wake:
		case <-ctx.Done():
			a.stop(nil)
			return
		}
	}
}

// Done is closed once Run has returned.
func (a *Writer) Done() <-chan struct{} { return a.done }

func (a *Writer) pendingSpill() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spill != nil && (a.spill.count > 0 || len(a.spill.opened) > 0)
}

// flushMemory writes a batch from the memory queue starting with first.
// It returns the batch when ctx ended before the cluster took it.
func (a *Writer) flushMemory(ctx context.Context, first raftstore.AuditEventInput) []raftstore.AuditEventInput {
	batch := []raftstore.AuditEventInput{first}
	for len(batch) < maxBatch {
		select {
		case ev := <-a.ch:
			batch = append(batch, ev)
			continue
		default:
		}
		break
	}
	// Room in the memory queue: a caller waiting without a spill can go.
	a.mu.Lock()
	a.room.Broadcast()
	a.mu.Unlock()
	if !a.apply(ctx, batch) {
		return batch
	}
	a.metrics.QueueEvents.Set(float64(a.inMemory.Add(-int64(len(batch)))))
	return nil
}

// flushSpill writes the oldest batch of the spill; false when ctx ended
// first (the batch stays in the spill).
func (a *Writer) flushSpill(ctx context.Context) bool {
	a.mu.Lock()
	read, err := a.spill.peek(maxBatch, a.now().UTC())
	a.mu.Unlock()
	if err != nil {
		// The disk failed (a line that cannot be trusted is quarantined,
		// not an error): kept for an operator, and the writer retries.
		a.logger.Error("audit spill unreadable", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-a.after(5 * time.Second):
			return true
		}
	}
	corrupt := 0
	for _, ev := range read.events {
		if ev.Type == EventAuditSpillCorrupt {
			corrupt++
			a.logger.Error("audit spill: a line could not be trusted; it was moved aside and is reported as "+EventAuditSpillCorrupt,
				"reason", ev.Fields["reason"], "offset", ev.Fields["offset"], "dir", a.spill.dir)
		}
	}
	if len(read.events) > 0 && !a.apply(ctx, read.events) {
		return false
	}
	a.metrics.SpillCorrupt.Add(float64(corrupt))
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.spill.commit(read); err != nil {
		a.logger.Error("audit spill: marking events written failed; they may be written twice", "err", err)
	}
	if a.spill.count == 0 && a.spilling {
		a.spilling = false
		a.logger.Info("audit spill written to the cluster; events go to the memory queue again")
	}
	a.gauges()
	a.room.Broadcast()
	return true
}

// apply writes batch, retrying until the cluster takes it; false when ctx
// ended first.
func (a *Writer) apply(ctx context.Context, batch []raftstore.AuditEventInput) bool {
	backoff := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := a.store.Apply(actx, &raftstore.AuditAppend{Events: batch})
		cancel()
		if err == nil {
			a.metrics.Written.Add(float64(len(batch)))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		a.logger.Error("writing audit events failed; will retry", "events", len(batch), "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-a.after(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// stop ends the writer: rest (a batch taken from the memory queue and not
// written) and what is still queued in memory get one last try each, and
// what the cluster does not take goes to the front of the spill (it is
// older than what the spill holds), or to the node's log without one.
func (a *Writer) stop(rest []raftstore.AuditEventInput) {
	// Whatever becomes of them below, no event stays in memory.
	defer func() { a.inMemory.Store(0); a.metrics.QueueEvents.Set(0) }()
	a.mu.Lock()
	a.stopped = true
	a.room.Broadcast()
	a.mu.Unlock()
	pending := rest
	for {
		select {
		case ev := <-a.ch:
			pending = append(pending, ev)
			continue
		default:
		}
		break
	}
	for len(pending) > 0 {
		n := min(len(pending), maxBatch)
		ctx, cancel := context.WithTimeout(context.Background(), a.stopTimeout)
		_, err := a.store.Apply(ctx, &raftstore.AuditAppend{Events: pending[:n]})
		cancel()
		if err != nil {
			break
		}
		a.metrics.Written.Add(float64(n))
		pending = pending[n:]
	}
	if len(pending) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.spill != nil {
		if err := a.spill.prepend(pending, a.now().UTC()); err == nil {
			a.metrics.Spilled.Add(float64(len(pending)))
			a.gauges()
			a.logger.Warn("node stopping: audit events the cluster did not take are kept on disk for the next start", "events", len(pending))
			return
		} else {
			a.logger.Error("audit spill write failed", "err", err)
		}
	}
	a.lost(pending)
}
