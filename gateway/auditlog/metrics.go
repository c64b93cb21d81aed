package auditlog

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the audit writer's instruments (docs/metrics.md).
type Metrics struct {
	// Written counts events the replicated log took (the audit.dropped
	// events the writer adds included).
	Written prometheus.Counter
	// Dropped counts events lost, by reason: queue_full (Record found the
	// queue full) or not_replicated (the node stopped while the cluster
	// could not take them; they went to the node's log instead).
	Dropped *prometheus.CounterVec
}

// NewMetrics makes the writer's metrics and registers them with reg; a nil
// reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Written: f.NewCounter(prometheus.CounterOpts{Name: "rampart_audit_events_written_total",
			Help: "Audit events this node wrote to the replicated audit log."}),
		Dropped: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_audit_events_dropped_total",
			Help: "Audit events this node lost, by reason (queue_full, not_replicated)."}, []string{"reason"}),
	}
	// Both series exist from the start: an alert on their increase needs
	// a zero to increase from.
	m.Dropped.WithLabelValues("queue_full")
	m.Dropped.WithLabelValues("not_replicated")
	return m
}
