// Package monitor serves what an operator's monitoring reads, without
// credentials: /metrics (Prometheus text format), /healthz (the process
// answers) and /readyz (the node can serve, or why not).
package monitor

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one condition of readiness: Run returns nil when it holds, or
// the reason it does not, written for an operator.
type Check struct {
	Name string
	Run  func() error
}

// Readiness is the /readyz answer.
type Readiness struct {
	Ready  bool          `json:"ready"`
	Node   string        `json:"node"`
	Checks []CheckResult `json:"checks"`
}

// CheckResult is one check's outcome.
type CheckResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// Health is the /healthz answer.
type Health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
}

// Paths are where the handler answers, under a prefix (Handler).
const (
	PathMetrics = "/metrics"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// MaxInFlight bounds the /metrics and the /readyz requests served at once
// (each its own bound): they need no credentials, and each gathers or
// checks the whole node, so a flood of them answers 503 rather than eat
// the node's CPU.
const MaxInFlight = 4

// Handler serves g's metrics at prefix+/metrics, liveness at
// prefix+/healthz and readiness (every check passing) at prefix+/readyz;
// prefix is "" or a path starting with "/". Anything else is 404, so it
// can sit in front of another handler (Route). At most MaxInFlight
// /metrics and MaxInFlight /readyz requests are served at once; more are
// 503.
func Handler(node, prefix string, g prometheus.Gatherer, checks []Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+PathMetrics, promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: MaxInFlight}))
	mux.HandleFunc("GET "+prefix+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Health{Status: "ok", Node: node})
	})
	inFlight := make(chan struct{}, MaxInFlight)
	mux.HandleFunc("GET "+prefix+PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		select {
		case inFlight <- struct{}{}:
			defer func() { <-inFlight }()
		default:
			http.Error(w, "Too many readiness requests at once; retry.", http.StatusServiceUnavailable)
			return
		}
		r := Ready(node, checks)
		status := http.StatusOK
		if !r.Ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, r)
	})
	return mux
}

// Ready runs every check.
func Ready(node string, checks []Check) Readiness {
	r := Readiness{Ready: true, Node: node, Checks: []CheckResult{}}
	for _, c := range checks {
		res := CheckResult{Name: c.Name, OK: true}
		if err := c.Run(); err != nil {
			res.OK, res.Reason, r.Ready = false, err.Error(), false
		}
		r.Checks = append(r.Checks, res)
	}
	return r
}

// Route sends the monitor's paths under prefix to mon and every other
// request to next: how the monitor shares the API's listener.
func Route(prefix string, mon, next http.Handler) http.Handler {
	paths := map[string]bool{prefix + PathMetrics: true, prefix + PathHealthz: true, prefix + PathReadyz: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if paths[r.URL.Path] {
			mon.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ValidPrefix reports whether prefix can hold the monitor's paths: "" or
// "/a/b" without a trailing slash, outside the API's /v1/.
func ValidPrefix(prefix string) bool {
	if prefix == "" {
		return true
	}
	return strings.HasPrefix(prefix, "/") && !strings.HasSuffix(prefix, "/") && !strings.ContainsAny(prefix, " {}?#%") &&
		prefix != "/v1" && !strings.HasPrefix(prefix, "/v1/")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
