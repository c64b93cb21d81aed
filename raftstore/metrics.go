package raftstore

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the store's instruments (docs/metrics.md): the apply latency
// measured as writes happen; the rest (Collector) read from raft at each
// scrape.
type Metrics struct {
	// ApplySeconds is the time of Store.Apply as its callers see it: from
	// the call to the command applied on the leader (forwarded from a
	// follower; waits for an election included), failures too.
	ApplySeconds prometheus.Histogram
}

// NewMetrics makes the store's metrics and registers them with reg; a nil
// reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		ApplySeconds: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{Name: "rampart_raft_apply_seconds",
			Help:    "Time of one write through raft as this node's callers see it (forwarding to the leader included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
}

// raftStates are the values of rampart_raft_state's label.
var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

var (
	descState = prometheus.NewDesc("rampart_raft_state",
		"1 for this node's raft state (follower, candidate, leader, shutdown), 0 for the others.", []string{"state"}, nil)
	descHasLeader = prometheus.NewDesc("rampart_raft_has_leader",
		"1 when this node knows a leader.", nil, nil)
	descFresh = prometheus.NewDesc("rampart_raft_fresh",
		"1 when this node's replica may answer security decisions (a leader, or a follower within the stale bound and caught up).", nil, nil)
	descTerm = prometheus.NewDesc("rampart_raft_term",
		"This node's current raft term.", nil, nil)
	descLastIndex = prometheus.NewDesc("rampart_raft_last_index",
		"Index of the last entry in this node's raft log.", nil, nil)
	descCommitIndex = prometheus.NewDesc("rampart_raft_commit_index",
		"Index of the last entry this node knows committed.", nil, nil)
	descAppliedIndex = prometheus.NewDesc("rampart_raft_applied_index",
		"Index of the last command this node's state machine applied.", nil, nil)
	descLastContact = prometheus.NewDesc("rampart_raft_last_contact_seconds",
		"Seconds since this follower last heard from a leader (0 on the leader); absent until it first has.", nil, nil)
)

// Collector reads a store's raft state at each scrape.
type Collector struct{ s *Store }

// NewCollector returns the collector of s's raft state.
func NewCollector(s *Store) *Collector { return &Collector{s: s} }

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descHasLeader, descFresh, descTerm, descLastIndex, descCommitIndex, descAppliedIndex, descLastContact} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.raft
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	state := r.State()
	for _, s := range raftStates {
		gauge(descState, boolValue(s == state), strings.ToLower(s.String()))
	}
	_, leader := c.s.Leader()
	gauge(descHasLeader, boolValue(leader != ""))
	gauge(descFresh, boolValue(c.s.CheckFresh() == nil))
	gauge(descTerm, float64(r.CurrentTerm()))
	gauge(descLastIndex, float64(r.LastIndex()))
	gauge(descCommitIndex, float64(r.CommitIndex()))
	gauge(descAppliedIndex, float64(c.s.fsm.AppliedIndex()))
	switch last := r.LastContact(); {
	case state == raft.Leader:
		gauge(descLastContact, 0)
	case !last.IsZero():
		gauge(descLastContact, c.s.cfg.Now().Sub(last).Seconds())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeApply notes the time of one Apply that started at start.
func (s *Store) observeApply(start time.Time) {
	s.cfg.Metrics.ApplySeconds.Observe(time.Since(start).Seconds())
}
