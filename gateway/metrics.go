package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampart-ssh/rampart/gateway/auditexport"
	"github.com/rampart-ssh/rampart/gateway/auditlog"
	"github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/gateway/monitor"
	"github.com/rampart-ssh/rampart/raftstore"
)

// nodeMetrics is a node's registry (its own, so that several nodes can run
// in one process) and the metrics of each room, which each room declares
// and updates; docs/metrics.md lists them all.
type nodeMetrics struct {
	reg       *prometheus.Registry
	raft      *raftstore.Metrics
	door      *frontdoor.Metrics
	jump      *jump.Metrics
	authority *authority.Metrics
	audit     *auditlog.Metrics
	login     *login.Metrics
	api       *httpapi.Metrics
	export    *auditexport.Metrics
}

// newNodeMetrics makes every room's metrics, registered with reg (a new
// registry when nil) along with the Go runtime's and the process's.
func newNodeMetrics(reg *prometheus.Registry) *nodeMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return newNodeMetricsOn(reg, reg)
}

func newNodeMetricsOn(reg *prometheus.Registry, r prometheus.Registerer) *nodeMetrics {
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &nodeMetrics{reg: reg, raft: raftstore.NewMetrics(r), door: frontdoor.NewMetrics(r), jump: jump.NewMetrics(r),
		authority: authority.NewMetrics(r), audit: auditlog.NewMetrics(r), login: login.NewMetrics(r), api: httpapi.NewMetrics(r),
		export: auditexport.NewMetrics(r)}
}

// scrapeCollectors are the metrics read from the replica at each scrape.
func scrapeCollectors(store *raftstore.Store, state func() *raftstore.State, now func() time.Time) []prometheus.Collector {
	return []prometheus.Collector{raftstore.NewCollector(store), login.NewBindingsCollector(state, now), httpapi.NewAgentLagCollector(state)}
}

// watchStore registers the metrics read from n's store at each scrape.
func (n *Node) watchStore() {
	n.metrics.reg.MustRegister(scrapeCollectors(n.store, n.store.State, n.now)...)
}

// readiness is what /readyz checks: a leader known, a replica fresh enough
// for security decisions (cluster.max_stale), and the CA keys unsealed.
func (n *Node) readiness() []monitor.Check {
	return []monitor.Check{
		{Name: "leader", Run: func() error {
			if _, addr := n.store.Leader(); addr == "" {
				return errors.New("no leader known to this node")
			}
			return nil
		}},
		{Name: "fresh", Run: func() error {
			if err := n.store.CheckFresh(); err != nil {
				return fmt.Errorf("replica not fresh within cluster.max_stale (%s): %w", n.cfg.Cluster.MaxStale, err)
			}
			return nil
		}},
		{Name: "ca_unsealed", Run: func() error {
			if err := n.keys.Unsealed(); err != nil {
				return fmt.Errorf("CA keys not unsealed: %w", err)
			}
			return nil
		}},
	}
}

// monitorHandler serves /metrics, /healthz and /readyz under
// metrics.path_prefix.
func (n *Node) monitorHandler() http.Handler {
	return monitor.Handler(n.id, n.cfg.Metrics.PathPrefix, n.metrics.reg, n.readiness())
}

// startMonitor serves the monitor on metrics.listen, in plain HTTP, when it
// is set (otherwise startAPI serves it on the API listener) until the node
// stops.
func (n *Node) startMonitor() error {
	addr := n.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: n.monitorHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-n.bgCtx.Done()
		_ = srv.Close()
	}()
	n.logger.Info("serving metrics and health", "addr", ln.Addr().String(), "path_prefix", n.cfg.Metrics.PathPrefix)
	return nil
}
