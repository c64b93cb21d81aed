package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// auditWriter batches audit events into AuditAppend commands so that a burst
// of logins costs one raft round trip, not one each. Record never blocks: if
// the queue is full the event is logged and dropped, and the drop is counted
// in the next batch.
type auditWriter struct {
	store interface {
		Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	}
	logger *slog.Logger
	now    func() time.Time

	ch      chan raftstore.AuditEventInput
	mu      sync.Mutex
	dropped int
	done    chan struct{}
}

const auditQueue = 4096

func newAuditWriter(store interface {
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}, logger *slog.Logger) *auditWriter {
	return &auditWriter{store: store, logger: logger, now: time.Now, ch: make(chan raftstore.AuditEventInput, auditQueue), done: make(chan struct{})}
}

// Record queues an event.
func (a *auditWriter) Record(typ, actor string, fields map[string]string) {
	ev := raftstore.AuditEventInput{Time: a.now().UTC(), Type: typ, Actor: actor, Fields: fields}
	select {
	case a.ch <- ev:
	default:
		a.mu.Lock()
		a.dropped++
		a.mu.Unlock()
		a.logger.Error("audit queue full; event dropped", "type", typ, "actor", actor)
	}
}

// run writes batches until ctx ends, then flushes what is queued.
func (a *auditWriter) run(ctx context.Context) {
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

func (a *auditWriter) flush(ctx context.Context, first raftstore.AuditEventInput) {
	batch := []raftstore.AuditEventInput{first}
	for len(batch) < 500 {
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
			Fields: map[string]string{"count": itoa(a.dropped)}})
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
			return
		}
		a.logger.Error("writing audit events failed; will retry", "events", len(batch), "err", err)
		select {
		case <-ctx.Done():
			for _, ev := range batch {
				a.logger.Error("audit event not replicated", "type", ev.Type, "actor", ev.Actor, "time", ev.Time, "fields", ev.Fields)
			}
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func itoa(n int) string {
	return slog.IntValue(n).String()
}
