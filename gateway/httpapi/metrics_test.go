package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The agent lag is, for each server with an agent, how far its applied
// index is behind its desired state's index; servers registered without an
// agent are not counted.
func TestAgentLagCollector(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22, MachineID: "m1",
			AgentKeyHash: strings.Repeat("a", 64)}, SetAgentKey: true, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", SSHPort: 22, MachineID: "m2",
			AgentKeyHash: strings.Repeat("b", 64)}, SetAgentKey: true, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s3", Project: "web", Name: "manual", Addr: "10.0.0.3", SSHPort: 22}, Now: now},
	)
	store := f
	apply := func(c raftstore.Command) uint64 {
		t.Helper()
		res, err := store.Apply(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return res.Index
	}
	c := NewAgentLagCollector(store.State)
	// Neither agent has reported: each is behind by its whole state, whose
	// index is its own row's (2 and 3 past the grant).
	_, s1, _ := store.State().ServerByID(nil, "s1")
	_, s2, _ := store.State().ServerByID(nil, "s2")
	maxLag, hist := scrapeLag(t, c)
	if maxLag != float64(s2.ModifyIndex) || hist.GetSampleCount() != 2 || hist.GetSampleSum() != float64(s1.ModifyIndex+s2.ModifyIndex) {
		t.Fatalf("before any report: max %v, histogram %v; want max %d over 2 servers", maxLag, hist, s2.ModifyIndex)
	}
	// s1 catches up, s2 reports an older index; then a person joins a
	// granted group, which changes both states.
	apply(&raftstore.AgentAppliedSet{ServerID: "s1", Index: s2.ModifyIndex})
	apply(&raftstore.AgentAppliedSet{ServerID: "s2", Index: s1.ModifyIndex})
	user := apply(&raftstore.UserUpsert{User: raftstore.User{ID: "a", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now})
	maxLag, hist = scrapeLag(t, c)
	if wantMax := float64(user - s1.ModifyIndex); maxLag != wantMax {
		t.Fatalf("max lag %v, want %v (s2's)", maxLag, wantMax)
	}
	if got, wantSum := hist.GetSampleSum(), float64(user-s2.ModifyIndex+user-s1.ModifyIndex); got != wantSum {
		t.Fatalf("lag sum %v, want %v", got, wantSum)
	}
	// Both catch up.
	apply(&raftstore.AgentAppliedSet{ServerID: "s1", Index: user})
	apply(&raftstore.AgentAppliedSet{ServerID: "s2", Index: user})
	maxLag, hist = scrapeLag(t, c)
	if maxLag != 0 || hist.GetSampleSum() != 0 || hist.GetBucket()[0].GetCumulativeCount() != 2 {
		t.Fatalf("caught up: max %v, histogram %v", maxLag, hist)
	}
}

// scrapeLag collects c: the max gauge and the histogram.
func scrapeLag(t *testing.T, c prometheus.Collector) (maxLag float64, hist *dto.Histogram) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "rampart_agent_state_lag_max":
			maxLag = mf.GetMetric()[0].GetGauge().GetValue()
		case "rampart_agent_state_lag":
			hist = mf.GetMetric()[0].GetHistogram()
		}
	}
	if hist == nil {
		t.Fatal("no rampart_agent_state_lag histogram")
	}
	return maxLag, hist
}
