// Package auditlog is the node's audit writer: it batches events into the
// replicated audit log.
package auditlog

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Store is what the writer needs of the replicated store.
type Store interface {
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// Writer batches audit events into AuditAppend commands so that a burst
// of logins costs one raft round trip, not one each. Record never blocks: if
// the queue is full the event is logged and dropped, and the drop is counted
// in the next batch.
type Writer struct {
	store  Store
	logger *slog.Logger
	now    func() time.Time
	// after is the wait between retries (time.After).
	after func(time.Duration) <-chan time.Time

	metrics *Metrics

	ch      chan raftstore.AuditEventInput
	mu      sync.Mutex
	dropped int
	done    chan struct{}
}

// queueSize is how many events wait for the writer before Record drops.
const queueSize = 4096

// maxBatch is the most events one AuditAppend carries.
const maxBatch = 500

// New returns a writer into store; Run writes.
func New(store Store, logger *slog.Logger) *Writer {
	return &Writer{store: store, logger: logger, now: time.Now, after: time.After, metrics: NewMetrics(nil),
		ch: make(chan raftstore.AuditEventInput, queueSize), done: make(chan struct{})}
}

// SetMetrics makes the writer count into m (registered ones); call it
// before Run.
func (a *Writer) SetMetrics(m *Metrics) { a.metrics = m }

// Record queues an event.
func (a *Writer) Record(typ, actor string, fields map[string]string) {
	ev := raftstore.AuditEventInput{Time: a.now().UTC(), Type: typ, Actor: actor, Fields: fields}
	select {
	case a.ch <- ev:
	default:
		a.mu.Lock()
		a.dropped++
		a.mu.Unlock()
		a.metrics.Dropped.WithLabelValues("queue_full").Inc()
		a.logger.Error("audit queue full; event dropped", "type", typ, "actor", actor)
	}
}

// Run writes batches until ctx ends, then flushes what is queued; Done is
// closed when it has.
func (a *Writer) Run(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case ev := <-a.ch:
			a.flush(ctx, ev)
		case <-ctx.Done():
			for {
				select {
				case ev := <-a.ch:
					a.flush(context.Background(), ev)
				default:
					return
				}
			}
		}
	}
}

// Done is closed once Run has returned.
func (a *Writer) Done() <-chan struct{} { return a.done }

func (a *Writer) flush(ctx context.Context, first raftstore.AuditEventInput) {
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
	a.mu.Lock()
	if a.dropped > 0 {
		batch = append(batch, raftstore.AuditEventInput{Time: a.now().UTC(), Type: "audit.dropped", Actor: "rampartd",
			Fields: map[string]string{"count": strconv.Itoa(a.dropped)}})
		a.dropped = 0
	}
	a.mu.Unlock()
	// Retry until the cluster takes the batch: an audit event is not dropped
	// because a leader election is under way. If the node is stopping and
	// the cluster is gone, the events go to the log instead of nowhere.
	backoff := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := a.store.Apply(actx, &raftstore.AuditAppend{Events: batch})
		cancel()
		if err == nil {
			a.metrics.Written.Add(float64(len(batch)))
			return
		}
		a.logger.Error("writing audit events failed; will retry", "events", len(batch), "err", err)
		select {
		case <-ctx.Done():
			a.metrics.Dropped.WithLabelValues("not_replicated").Add(float64(len(batch)))
			for _, ev := range batch {
				a.logger.Error("audit event not replicated", "type", ev.Type, "actor", ev.Actor, "time", ev.Time, "fields", ev.Fields)
			}
			return
		case <-a.after(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
