package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Metrics are the API's instruments (docs/metrics.md). Label values come
// from fixed lists: never a token, a server or an address.
type Metrics struct {
	// AuthFailures counts requests refused for their credentials, by the
	// status answered: 401, 403, or 429 once the source (or certificate)
	// has used up its failures.
	AuthFailures *prometheus.CounterVec
	// Refusals counts refusals of the endpoints open to anyone, by endpoint
	// (enroll, join) and reason: rate_limited (the per-source limit) or
	// credentials (the token or identity document was refused).
	Refusals *prometheus.CounterVec
	// TokenRefusals counts admin API requests of a valid service token that
	// were refused, by reason: insufficient_scope (a route its scope does not
	// reach), client_error (another 4xx answer), rate_limited (the token is
	// over its limit of refused requests).
	TokenRefusals *prometheus.CounterVec
	// LongPolls is the number of agents' state requests held open now.
	LongPolls prometheus.Gauge
	// AgentsConnected is the number of servers whose agent holds a state
	// request open on this node now.
	AgentsConnected prometheus.Gauge

	mu      sync.Mutex
	polling map[string]int // server id → state requests held
}

// NewMetrics makes the API's metrics and registers them with reg; a nil reg
// registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		AuthFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_api_auth_failures_total",
			Help: "API requests refused for their credentials, by status answered (401, 403, 429)."}, []string{"status"}),
		Refusals: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_api_refusals_total",
			Help: "Refusals of the API endpoints open to anyone, by endpoint (enroll, join) and reason (rate_limited, credentials)."},
			[]string{"endpoint", "reason"}),
		TokenRefusals: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_api_token_refusals_total",
			Help: "Admin API requests of a valid service token refused, by reason (insufficient_scope, client_error, rate_limited)."},
			[]string{"reason"}),
		LongPolls: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_agent_longpolls_held",
			Help: "Agents' state requests this node holds open now."}),
		AgentsConnected: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_agents_connected",
			Help: "Servers whose agent holds a state request open on this node now."}),
		polling: map[string]int{},
	}
	return m
}

// polled notes a state request of serverID held open; the function it
// returns notes its end.
func (m *Metrics) polled(serverID string) (done func()) {
	m.mu.Lock()
	m.polling[serverID]++
	m.LongPolls.Inc()
	m.AgentsConnected.Set(float64(len(m.polling)))
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.polling[serverID]--; m.polling[serverID] <= 0 {
			delete(m.polling, serverID)
		}
		m.LongPolls.Dec()
		m.AgentsConnected.Set(float64(len(m.polling)))
	}
}

// authFailed counts a refusal of credentials answered with err's status.
func (m *Metrics) authFailed(err error) {
	status := http.StatusUnauthorized
	var he *HTTPError
	if errors.As(err, &he) {
		status = he.Status
	}
	m.AuthFailures.WithLabelValues(strconv.Itoa(status)).Inc()
}

// credentialsRefused counts err, an error of an endpoint open to anyone,
// when it refuses the caller's credentials (401 or 403).
func (m *Metrics) credentialsRefused(endpoint string, err error) {
	var he *HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
		m.Refusals.WithLabelValues(endpoint, "credentials").Inc()
	}
}

// Buckets of rampart_agent_state_lag, in raft entries.
var lagBuckets = []float64{0, 1, 10, 100, 1000, 10000, 100000}

var (
	descLagMax = prometheus.NewDesc("rampart_agent_state_lag_max",
		"Largest agent state lag among enrolled servers: raft entries between the newest change their desired state is built from and what their agent last applied.", nil, nil)
	descLag = prometheus.NewDesc("rampart_agent_state_lag",
		"Agent state lag of each enrolled server (raft entries), as a distribution over servers at the time of the scrape.", nil, nil)
)

// AgentLagCollector reports how far enrolled servers' agents are behind
// their desired state, read from the replica at each scrape: for each
// server with an agent, the index its state is computed at (the newest
// change to the tables agents' states are built from, or to the server's
// own row) minus the index its agent has applied. An agent whose state has
// not changed reports that newer index when its long-poll wait ends, so a
// lag of up to one wait is normal after unrelated changes.
type AgentLagCollector struct {
	state func() *raftstore.State
}

// NewAgentLagCollector reads state's replica.
func NewAgentLagCollector(state func() *raftstore.State) *AgentLagCollector {
	return &AgentLagCollector{state: state}
}

func (c *AgentLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLagMax
	ch <- descLag
}

func (c *AgentLagCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state()
	_, servers, err := st.Servers(nil)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLagMax, err)
		return
	}
	tables := st.MaxIndex(agentTables...)
	var maxLag uint64
	var sum float64
	var count uint64
	buckets := map[float64]uint64{}
	for _, srv := range servers {
		if srv.AgentKeyHash == "" {
			continue // registered without an agent
		}
		_, a, err := st.AgentAppliedOf(nil, srv.ID)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descLagMax, err)
			return
		}
		var applied uint64
		if a != nil {
			applied = a.Index
		}
		var lag uint64
		if want := max(tables, srv.ModifyIndex); want > applied {
			lag = want - applied
		}
		maxLag = max(maxLag, lag)
		sum += float64(lag)
		count++
		for _, b := range lagBuckets {
			if float64(lag) <= b {
				buckets[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descLagMax, prometheus.GaugeValue, float64(maxLag))
	ch <- prometheus.MustNewConstHistogram(descLag, count, sum, buckets)
}
