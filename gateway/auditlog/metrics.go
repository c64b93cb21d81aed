package auditlog

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the writer's instruments (docs/metrics.md).
type Metrics struct {
	// Written counts events the replicated log took.
	Written prometheus.Counter
	// Spilled counts events that went to the spill on disk because the
	// memory queue was full (or the node stopped with them unwritten).
	Spilled prometheus.Counter
	// SpillEvents and SpillBytes are what the spill holds now.
	SpillEvents prometheus.Gauge
	SpillBytes  prometheus.Gauge
	// SpillCorrupt counts lines of the spill that could not be trusted
	// (moved to its quarantine file, each an audit.spill_corrupt event).
	SpillCorrupt prometheus.Counter
	// QueueEvents is how many events wait in the memory queue: recorded,
	// not yet in raft nor on disk, so lost if the node crashed now.
	QueueEvents prometheus.Gauge
	// BackpressureSeconds adds up the time callers of Record waited for
	// room because both queues were full.
	BackpressureSeconds prometheus.Counter
	// Dropped counts events the writer could keep nowhere, by reason:
	// not_replicated (the node stopped while the cluster could not take
	// them and it has no spill, or the spill could not be written; they
	// went to the node's log). A node with a working spill never counts.
	Dropped *prometheus.CounterVec
}

// NewMetrics makes the writer's metrics and registers them with reg; a nil
// reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Written: f.NewCounter(prometheus.CounterOpts{Name: "rampart_audit_events_written_total",
			Help: "Audit events this node wrote to the replicated audit log."}),
		Spilled: f.NewCounter(prometheus.CounterOpts{Name: "rampart_audit_events_spilled_total",
			Help: "Audit events this node put in its spill on disk because the cluster was not taking them fast enough."}),
		SpillEvents: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_audit_spill_events",
			Help: "Audit events waiting in this node's spill on disk."}),
		SpillBytes: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_audit_spill_bytes",
			Help: "Bytes of audit events waiting in this node's spill on disk."}),
		SpillCorrupt: f.NewCounter(prometheus.CounterOpts{Name: "rampart_audit_spill_corrupt_total",
			Help: "Lines of this node's audit spill that could not be trusted (unreadable, forged, replayed or missing); each is an audit.spill_corrupt event."}),
		QueueEvents: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_audit_queue_events",
			Help: "Audit events waiting in this node's memory queue: neither in the replicated log nor on disk yet, so lost if the node crashed now."}),
		BackpressureSeconds: f.NewCounter(prometheus.CounterOpts{Name: "rampart_audit_backpressure_seconds_total",
			Help: "Time callers waited to record an audit event because the memory queue and the spill were full."}),
		Dropped: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_audit_events_dropped_total",
			Help: "Audit events this node could keep nowhere (not_replicated: stopped with no working spill; they went to its log)."}, []string{"reason"}),
	}
	// The series exists from the start: an alert on its increase needs a
	// zero to increase from.
	m.Dropped.WithLabelValues("not_replicated")
	return m
}
