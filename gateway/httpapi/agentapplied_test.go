package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// uncancelledStore applies every write to the end, whatever its context:
// the handler cancels its applied-index write once it has answered, which a
// read of the recorded index after the answer must not race.
type uncancelledStore struct{ *raftstoretest.Store }

func (s uncancelledStore) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	return s.Store.Apply(context.WithoutCancel(ctx), cmd)
}

// agentStateServer serves the API over an FSM holding project web, its
// server s1 (machine m1), alice in a group granted to it, and node n1; it
// returns the store and a GET of s1's state with the given query.
func agentStateServer(t *testing.T) (uncancelledStore, func(query string) (*api.AgentState, int)) {
	t.Helper()
	now := time.Now()
	f := applyAll(t,
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "10.0.0.11:8300", APIAddr: "10.0.0.11:8443"}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22, MachineID: "m1"}, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "a", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now},
	)
	store := uncancelledStore{f}
	pki := newTestPKI(t)
	ts := startAgentAPI(t, pki, store, nil)
	agent := pki.client(api.RoleAgent, "s1")
	return store, func(query string) (*api.AgentState, int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/agents/state?"+query, nil)
		req.Header.Set(api.MachineIDHeader, "m1")
		resp, err := agent.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, resp.StatusCode
		}
		var st api.AgentState
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return &st, resp.StatusCode
	}
}

// A poll carries the index the agent has applied; the node replicates it,
// only ever forwards, for the jump on every node.
func TestAgentStateRecordsApplied(t *testing.T) {
	store, get := agentStateServer(t)
	applied := func() uint64 {
		t.Helper()
		_, a, err := store.State().AgentAppliedOf(nil, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if a == nil {
			return 0
		}
		return a.Index
	}
	first, _ := get("index=0")
	if applied() != 0 {
		t.Fatalf("recorded %d before the agent said it applied anything", applied())
	}
	for _, tc := range []struct {
		name   string
		query  string
		status int
		want   uint64
	}{
		{"ok/first-report", fmt.Sprintf("index=0&applied=%d", first.Index), http.StatusOK, first.Index},
		{"ok/older-report-ignored", "index=0&applied=1", http.StatusOK, first.Index},
		{"ok/no-report", "index=0", http.StatusOK, first.Index},
		{"ok/newer-report", fmt.Sprintf("index=0&applied=%d", first.Index+3), http.StatusOK, first.Index + 3},
		{"fail/not-a-number", "index=0&applied=x", http.StatusBadRequest, first.Index + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, status := get(tc.query); status != tc.status {
				t.Fatalf("HTTP %d, want %d", status, tc.status)
			}
			if got := applied(); got != tc.want {
				t.Errorf("recorded %d, want %d", got, tc.want)
			}
		})
	}
}

// The state carries the cluster's API addresses, and a node joining
// answers a waiting agent with the new list.
func TestAgentStateCarriesClusterAddresses(t *testing.T) {
	store, get := agentStateServer(t)
	first, _ := get("index=0")
	if want := []string{"10.0.0.11:8443"}; !slices.Equal(first.Cluster, want) {
		t.Fatalf("cluster %v, want %v", first.Cluster, want)
	}
	done := make(chan *api.AgentState, 1)
	go func() {
		st, _ := get(fmt.Sprintf("index=%d&wait=60s", first.Index))
		done <- st
	}()
	// The agent is waiting when the node joins, or it finds the change at
	// once: either way it is answered with the new list.
	if _, err := store.Apply(t.Context(), &raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "10.0.0.12:8300", APIAddr: "10.0.0.12:8443"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-done:
		if want := []string{"10.0.0.11:8443", "10.0.0.12:8443"}; st == nil || !slices.Equal(st.Cluster, want) {
			t.Fatalf("after n2 joined: %+v, want cluster %v", st, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting agent was not told that a node joined")
	}
}
