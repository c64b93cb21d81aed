package authority

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the authority's instruments (docs/metrics.md).
type Metrics struct {
	// Minted counts certificates issued, by kind: user (per-hop),
	// inner_host (the jump's inner server), target_host (targets' host
	// certificates), tls (agents' and nodes' cluster certificates).
	Minted *prometheus.CounterVec
	// MintErrors counts failed issuances by kind.
	MintErrors *prometheus.CounterVec
	// MintSeconds is the time one issuance takes, by kind; a user CA
	// created on first use is part of it.
	MintSeconds *prometheus.HistogramVec
}

// NewMetrics makes the authority's metrics and registers them with reg; a
// nil reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Minted: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_certificates_minted_total",
			Help: "Certificates issued by this node, by kind (user, inner_host, target_host, tls)."}, []string{"kind"}),
		MintErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_certificate_mint_errors_total",
			Help: "Certificate issuances that failed, by kind (user, inner_host, target_host, tls)."}, []string{"kind"}),
		MintSeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_certificate_mint_seconds",
			Help:    "Time to issue one certificate, by kind (user, inner_host, target_host, tls).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"kind"}),
	}
}

// Certificate kinds, the values of the kind label.
const (
	kindUser       = "user"
	kindInnerHost  = "inner_host"
	kindTargetHost = "target_host"
	kindTLS        = "tls"
)

// observe counts one issuance of kind that started at start.
func (m *Metrics) observe(kind string, start time.Time, err error) {
	if err != nil {
		m.MintErrors.WithLabelValues(kind).Inc()
		return
	}
	m.Minted.WithLabelValues(kind).Inc()
	m.MintSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}
