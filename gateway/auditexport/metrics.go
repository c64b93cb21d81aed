package auditexport

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the exporter's instruments, labelled by sink name
// (docs/metrics.md). Only the node exporting (the leader) moves them.
type Metrics struct {
	// Exported counts events a sink took.
	Exported *prometheus.CounterVec
	// Failures counts failed tries (each is retried after a backoff).
	Failures *prometheus.CounterVec
	// CursorFailures counts cursor writes to raft that failed.
	CursorFailures *prometheus.CounterVec
	// Up is 1 while the sink takes events, 0 during an outage.
	Up *prometheus.GaugeVec
	// Active is 1 on the node exporting to the sink.
	Active *prometheus.GaugeVec
	// Cursor is the last event the sink took; Lag how many newer ones
	// wait.
	Cursor *prometheus.GaugeVec
	Lag    *prometheus.GaugeVec
	// SendSeconds is how long a batch took to deliver.
	SendSeconds *prometheus.HistogramVec
}

// NewMetrics makes the exporter's metrics and registers them with reg; a nil
// reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	l := []string{"sink"}
	return &Metrics{
		Exported: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_audit_export_events_total",
			Help: "Audit events a sink took from this node's exporter."}, l),
		Failures: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_audit_export_failures_total",
			Help: "Failed tries to deliver a batch of audit events to a sink (each is retried)."}, l),
		CursorFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_audit_export_cursor_failures_total",
			Help: "Export cursor writes to raft that failed (the next batch's write covers them)."}, l),
		Up: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_export_up",
			Help: "1 while the sink takes audit events, 0 during an outage (on the exporting node)."}, l),
		Active: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_export_active",
			Help: "1 on the node exporting to the sink (the raft leader), else 0."}, l),
		Cursor: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_export_cursor",
			Help: "Sequence number of the last audit event the sink took."}, l),
		Lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_export_lag_events",
			Help: "Audit events written but not yet taken by the sink."}, l),
		SendSeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_audit_export_send_seconds",
			Help: "Time to deliver one batch of audit events to a sink.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, l),
	}
}
