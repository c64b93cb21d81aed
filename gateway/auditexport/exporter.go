// Package auditexport ships the replicated audit log, at least once, to the
// sinks a cluster configures (a JSON-lines file, syslog, Splunk HEC, a signed
// webhook). Only the raft leader exports; each sink's cursor is kept in raft.
package auditexport

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The audit events the exporter writes: one when a sink's outage begins, one
// when it ends, however many tries it took (docs/audit-export.md).
const (
	// EventAuditSinkFail: fields sink, sink_type, error, seq (the first
	// event not delivered).
	EventAuditSinkFail = "audit_sink.fail"
	// EventAuditSinkRecover: fields sink, sink_type, failed_tries,
	// outage_seconds, seq (the last event delivered).
	EventAuditSinkRecover = "audit_sink.recover"
)

// Store is what the exporter needs of the replicated store.
type Store interface {
	IsLeader() bool
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	// ConsistentRead returns once this node's replica holds every write
	// committed before the call (so a new leader reads the cursor its
	// predecessor wrote last).
	ConsistentRead(ctx context.Context) error
}

// Auditor writes an audit event (auditlog.Writer).
type Auditor interface {
	Record(typ, actor string, fields map[string]string)
}

// Sink is one destination. Send returns nil only once the destination has
// taken every event of the batch (its acknowledgement, where it gives one);
// an error means the whole batch is sent again.
type Sink interface {
	Send(ctx context.Context, batch []*raftstore.AuditEvent) error
	Close() error
}

// Target is a sink with what the exporter needs to know of it.
type Target struct {
	Name string
	// Kind is the sink's type (file, syslog, splunk_hec, webhook), for
	// events and metrics.
	Kind string
	Sink Sink
	// FromEnd: a sink the cluster never exported to starts after the
	// newest event instead of at the first.
	FromEnd bool
}

// Config is what an Exporter is built from.
type Config struct {
	Store   Store
	Auditor Auditor
	Targets []Target
	// NodeID names this node in the cursor it writes.
	NodeID string
	Logger *slog.Logger
	// Metrics defaults to unregistered ones.
	Metrics *Metrics
	// BatchSize is the most events one Send carries (default 500).
	BatchSize int
	// RetryMin and RetryMax bound the backoff between failed tries
	// (defaults 1s and 1m).
	RetryMin, RetryMax time.Duration
	// Now and Wait default to the clock (Wait returns ctx's error if it
	// ends first).
	Now  func() time.Time
	Wait func(ctx context.Context, d time.Duration) error
}

// Defaults of Config.
const (
	DefaultBatchSize = 500
	DefaultRetryMin  = time.Second
	DefaultRetryMax  = time.Minute
)

// leaderPoll is how often a follower looks whether it leads now, and how
// long an idle leader waits for new events before it looks again.
const leaderPoll = time.Second

// persistTimeout bounds one cursor or state write.
const persistTimeout = 10 * time.Second

// Exporter runs one loop per sink while this node leads.
type Exporter struct {
	cfg Config
	log *slog.Logger
}

// New returns an exporter; Run exports.
func New(cfg Config) *Exporter {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = sleep
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{cfg: cfg, log: cfg.Logger.With("component", "audit_export")}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run exports to every sink until ctx ends, then closes the sinks.
func (e *Exporter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range e.cfg.Targets {
		wg.Go(func() {
			defer func() {
				if err := t.Sink.Close(); err != nil {
					e.log.Warn("close audit sink", "sink", t.Name, "err", err)
				}
			}()
			for ctx.Err() == nil {
				if !e.cfg.Store.IsLeader() {
					e.cfg.Metrics.Active.WithLabelValues(t.Name).Set(0)
					if e.cfg.Wait(ctx, leaderPoll) != nil {
						return
					}
					continue
				}
				e.lead(ctx, t)
			}
		})
	}
	wg.Wait()
}

// sinkRun is one sink's exporting state while this node leads.
type sinkRun struct {
	t Target
	// seq is the last event the sink took.
	seq uint64
	// failing since when (zero: healthy), and the failed tries so far.
	since time.Time
	tries int
}

// lead exports to one sink until this node stops leading or ctx ends.
func (e *Exporter) lead(ctx context.Context, t Target) {
	m, log := e.cfg.Metrics, e.log.With("sink", t.Name)
	r, err := e.takeOver(ctx, t)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("audit export: cannot read the cursor; will retry", "err", err)
			_ = e.cfg.Wait(ctx, leaderPoll)
		}
		return
	}
	m.Active.WithLabelValues(t.Name).Set(1)
	defer m.Active.WithLabelValues(t.Name).Set(0)
	// Each term starts with a fresh connection and file: another node may
	// have rotated the file or been the syslog peer meanwhile.
	defer func() {
		if err := t.Sink.Close(); err != nil {
			log.Warn("close audit sink", "err", err)
		}
	}()
	log.Info("exporting audit events", "from_seq", r.seq+1)
	backoff := e.cfg.RetryMin
	for ctx.Err() == nil && e.cfg.Store.IsLeader() {
		st := e.cfg.Store.State()
		ws := memdb.NewWatchSet()
		ws.Add(st.AbandonCh())
		_, batch, err := st.AuditSince(ws, r.seq, e.cfg.BatchSize)
		if err != nil {
			log.Error("read the audit log", "err", err)
			_ = e.cfg.Wait(ctx, leaderPoll)
			continue
		}
		if _, head, herr := st.AuditLast(nil); herr == nil && head != nil {
			m.Lag.WithLabelValues(t.Name).Set(float64(head.Seq - min(head.Seq, r.seq)))
		}
		if len(batch) == 0 {
			wctx, cancel := context.WithTimeout(ctx, leaderPoll)
			_ = ws.WatchCtx(wctx)
			cancel()
			continue
		}
		start := e.cfg.Now()
		if err := t.Sink.Send(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.Failures.WithLabelValues(t.Name).Inc()
			e.failed(ctx, r, batch[0].Seq, err)
			log.Warn("audit sink failed; will retry", "seq", batch[0].Seq, "events", len(batch), "backoff", backoff, "err", err)
			if e.cfg.Wait(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, e.cfg.RetryMax)
			continue
		}
		backoff = e.cfg.RetryMin
		last := batch[len(batch)-1].Seq
		m.Exported.WithLabelValues(t.Name).Add(float64(len(batch)))
		m.SendSeconds.WithLabelValues(t.Name).Observe(e.cfg.Now().Sub(start).Seconds())
		r.seq = last
		if !r.since.IsZero() {
			e.recovered(ctx, r)
		}
		e.persist(ctx, r)
		m.Cursor.WithLabelValues(t.Name).Set(float64(r.seq))
	}
}

// takeOver reads where the cluster left the sink, after a barrier that
// makes this replica hold every cursor the last exporter wrote.
func (e *Exporter) takeOver(ctx context.Context, t Target) (*sinkRun, error) {
	cctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	if err := e.cfg.Store.ConsistentRead(cctx); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	st := e.cfg.Store.State()
	_, cur, err := st.AuditExportCursorOf(nil, t.Name)
	if err != nil {
		return nil, err
	}
	r := &sinkRun{t: t}
	switch {
	case cur != nil:
		r.seq, r.since = cur.Seq, cur.FailingSince
	case t.FromEnd:
		_, head, err := st.AuditLast(nil)
		if err != nil {
			return nil, err
		}
		if head != nil {
			r.seq = head.Seq
		}
		if err := e.apply(ctx, &raftstore.AuditExportCursorSet{Sink: t.Name, Seq: r.seq, Node: e.cfg.NodeID, At: e.cfg.Now().UTC()}); err != nil {
			return nil, err
		}
	}
	e.cfg.Metrics.Cursor.WithLabelValues(t.Name).Set(float64(r.seq))
	e.cfg.Metrics.Up.WithLabelValues(t.Name).Set(boolGauge(r.since.IsZero()))
	return r, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// failed counts a failed try; the first of an outage is recorded in raft
// and audited (an outage a previous leader began is not audited again).
func (e *Exporter) failed(ctx context.Context, r *sinkRun, seq uint64, err error) {
	r.tries++
	e.cfg.Metrics.Up.WithLabelValues(r.t.Name).Set(0)
	msg := errorText(err)
	if !r.since.IsZero() {
		return
	}
	r.since = e.cfg.Now().UTC()
	if perr := e.apply(ctx, &raftstore.AuditSinkStateSet{Sink: r.t.Name, Failing: true, At: r.since, Error: msg}); perr != nil {
		e.log.Warn("record the audit sink's outage", "sink", r.t.Name, "err", perr)
	}
	e.cfg.Auditor.Record(EventAuditSinkFail, "rampartd", map[string]string{
		"sink": r.t.Name, "sink_type": r.t.Kind, "error": msg, "seq": strconv.FormatUint(seq, 10), "node": e.cfg.NodeID})
}

// recovered ends an outage: recorded in raft and audited once.
func (e *Exporter) recovered(ctx context.Context, r *sinkRun) {
	outage := e.cfg.Now().Sub(r.since)
	if err := e.apply(ctx, &raftstore.AuditSinkStateSet{Sink: r.t.Name, At: e.cfg.Now().UTC()}); err != nil {
		e.log.Warn("record the audit sink's recovery", "sink", r.t.Name, "err", err)
	}
	e.cfg.Auditor.Record(EventAuditSinkRecover, "rampartd", map[string]string{
		"sink": r.t.Name, "sink_type": r.t.Kind, "failed_tries": strconv.Itoa(r.tries),
		"outage_seconds": strconv.FormatFloat(outage.Seconds(), 'f', 1, 64), "seq": strconv.FormatUint(r.seq, 10), "node": e.cfg.NodeID})
	e.log.Info("audit sink recovered", "sink", r.t.Name, "failed_tries", r.tries, "outage", outage)
	e.cfg.Metrics.Up.WithLabelValues(r.t.Name).Set(1)
	r.since, r.tries = time.Time{}, 0
}

// persist writes the cursor. A failure is logged, not retried: the next
// batch's write covers this one, and until one lands a new exporter only
// sends these events again.
func (e *Exporter) persist(ctx context.Context, r *sinkRun) {
	if err := e.apply(ctx, &raftstore.AuditExportCursorSet{Sink: r.t.Name, Seq: r.seq, Node: e.cfg.NodeID, At: e.cfg.Now().UTC()}); err != nil && ctx.Err() == nil {
		e.cfg.Metrics.CursorFailures.WithLabelValues(r.t.Name).Inc()
		e.log.Warn("persist the audit export cursor", "sink", r.t.Name, "seq", r.seq, "err", err)
	}
}

func (e *Exporter) apply(ctx context.Context, cmd raftstore.Command) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
	defer cancel()
	_, err := e.cfg.Store.Apply(actx, cmd)
	return err
}

// errorText is err's text for the audit log and raft: one line, at most
// 500 bytes. Sinks build their errors without secrets (no token, key or
// response body).
func errorText(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "..."
	}
	return s
}
