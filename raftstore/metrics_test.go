package raftstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// raftGauges scrapes s's Collector: each gauge by name, the state gauge by
// name{state}.
func raftGauges(t *testing.T, s *Store) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(s))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			out[name] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The raft gauges follow the node: leader and follower each report their
// state, a leader, freshness and indexes; a write moves the applied index
// and is timed where it was asked for; a node cut off from its quorum
// reports no leader and a stale replica.
func TestRaftMetrics(t *testing.T) {
	var metrics []*Metrics
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxStale = time.Second
		cfg.Metrics = NewMetrics(nil)
		metrics = append(metrics, cfg.Metrics)
	})
	leader, fs := c.leader(), c.followers()
	want := func(s *Store, what string, cond func(g map[string]float64) bool) {
		t.Helper()
		eventually(t, what+" on "+s.NodeID(), func() error {
			if g := raftGauges(t, s); !cond(g) {
				return fmt.Errorf("gauges %v", g)
			}
			return nil
		})
	}
	want(leader, "leader gauges", func(g map[string]float64) bool {
		return g["rampart_raft_state{leader}"] == 1 && g["rampart_raft_state{follower}"] == 0 && g["rampart_raft_has_leader"] == 1 &&
			g["rampart_raft_fresh"] == 1 && g["rampart_raft_term"] >= 1 && g["rampart_raft_last_contact_seconds"] == 0
	})
	want(fs[0], "follower gauges", func(g map[string]float64) bool {
		return g["rampart_raft_state{follower}"] == 1 && g["rampart_raft_state{leader}"] == 0 && g["rampart_raft_has_leader"] == 1 &&
			g["rampart_raft_fresh"] == 1
	})
	before := raftGauges(t, fs[0])["rampart_raft_applied_index"]
	applies := func() (n uint64) {
		for _, m := range metrics {
			n += sampleCount(t, m.ApplySeconds)
		}
		return n
	}
	appliesBefore := applies()
	if _, err := fs[0].Apply(testCtx(t), projectCmd("metrics")); err != nil {
		t.Fatal(err)
	}
	// Forwarded: applied on the leader when Apply returns, here soon after.
	want(fs[0], "applied index moved", func(g map[string]float64) bool { return g["rampart_raft_applied_index"] > before })
	if got := applies(); got != appliesBefore+1 {
		t.Fatalf("rampart_raft_apply_seconds counted %d applies after one more, was %d", got, appliesBefore)
	}
	want(fs[0], "commit index", func(g map[string]float64) bool {
		return g["rampart_raft_commit_index"] >= g["rampart_raft_applied_index"] && g["rampart_raft_last_index"] >= g["rampart_raft_commit_index"]
	})

	alone := fs[0]
	c.stop(leader)
	c.stop(fs[1])
	want(alone, "no leader, stale", func(g map[string]float64) bool {
		return g["rampart_raft_has_leader"] == 0 && g["rampart_raft_fresh"] == 0 && g["rampart_raft_state{leader}"] == 0
	})
}

// sampleCount is the number of observations of a histogram.
func sampleCount(t *testing.T, m prometheus.Metric) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}
