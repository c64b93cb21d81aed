package login

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Metrics are sign-in's instruments (docs/metrics.md): the requests to the
// IdP, and the bindings that let keys in without it.
type Metrics struct {
	// IdPSeconds is the time of each request to the IdP, by endpoint
	// (idpEndpoint) and code: the HTTP status, or "error" when none came.
	IdPSeconds *prometheus.HistogramVec
	// IdPErrors counts requests to the IdP that failed, by endpoint:
	// no answer (a connection error or time-out), or a 5xx.
	IdPErrors *prometheus.CounterVec
}

// NewMetrics makes sign-in's metrics and registers them with reg; a nil reg
// registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		IdPSeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_idp_request_seconds",
			Help:    "Time of each request to the identity provider, by endpoint (discovery, device_authorization, token, jwks, userinfo, other) and code (HTTP status, or error).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"endpoint", "code"}),
		IdPErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_idp_request_errors_total",
			Help: "Requests to the identity provider that got no answer or a 5xx, by endpoint."}, []string{"endpoint"}),
	}
}

// Transport returns base (http.DefaultTransport when nil) measuring each
// request in m: the IdP client of a node's Provider (OIDCConfig.HTTPClient).
func (m *Metrics) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &idpTransport{base: base, m: m}
}

type idpTransport struct {
	base http.RoundTripper
	m    *Metrics
}

func (t *idpTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	endpoint := idpEndpoint(r.URL.Path)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.m.IdPSeconds.WithLabelValues(endpoint, code).Observe(time.Since(start).Seconds())
	if err != nil || resp.StatusCode >= 500 {
		t.m.IdPErrors.WithLabelValues(endpoint).Inc()
	}
	return resp, err
}

// idpEndpoint names the IdP endpoint a request path is for, from the names
// providers give them; the label stays one of a few values whatever the
// IdP's paths are.
func idpEndpoint(path string) string {
	p := strings.ToLower(path)
	switch {
	case strings.HasSuffix(p, "/.well-known/openid-configuration"):
		return "discovery"
	case strings.Contains(p, "device"):
		return "device_authorization"
	case strings.HasSuffix(p, "/token"):
		return "token"
	case strings.Contains(p, "jwks") || strings.HasSuffix(p, "/keys") || strings.HasSuffix(p, "/certs"):
		return "jwks"
	case strings.Contains(p, "userinfo"):
		return "userinfo"
	}
	return "other"
}

// BindingsCollector reports rampart_bindings_live, the key bindings that
// sign people in now (not expired), read from the replica at each scrape.
type BindingsCollector struct {
	state func() *raftstore.State
	now   func() time.Time
	desc  *prometheus.Desc
}

// NewBindingsCollector counts the live bindings of state's replica at the
// time now gives.
func NewBindingsCollector(state func() *raftstore.State, now func() time.Time) *BindingsCollector {
	return &BindingsCollector{state: state, now: now,
		desc: prometheus.NewDesc("rampart_bindings_live", "Key bindings that are not expired (cluster-wide, from this node's replica).", nil, nil)}
}

func (c *BindingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *BindingsCollector) Collect(ch chan<- prometheus.Metric) {
	_, all, err := c.state().Bindings(nil)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	now, live := c.now(), 0
	for _, b := range all {
		if now.Before(b.ExpiresAt) {
			live++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(live))
}
