package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// An agent that is up to date is not answered when only writes that leave
// its own state unchanged happen (another project's server, a person in no
// granted group), and is answered at once when its state changes.
func TestAgentStateWaitsForItsOwnChange(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22, MachineID: "m1"}, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "a", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now},
	)
	store := f
	pki := newTestPKI(t)
	handler := New(store, nil, slog.New(slog.DiscardHandler))
	// waiting fires each time a request has read the state and waits for
	// a change; a write made after it is seen by that wait.
	waiting := make(chan struct{}, 16)
	handler.agentWaiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	ts := httptest.NewUnstartedServer(handler)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	agent := pki.client(api.RoleAgent, "s1")
	get := func(index uint64, wait string) (*api.AgentState, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/agents/state?index=%d&wait=%s", ts.URL, index, wait), nil)
		req.Header.Set(api.MachineIDHeader, "m1")
		start := time.Now()
		resp, err := agent.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
		var st api.AgentState
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return &st, time.Since(start)
	}
	apply := func(c raftstore.Command) uint64 {
		t.Helper()
		res, err := store.Apply(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return res.Index
	}
	first, _ := get(0, "")
	if len(first.Users) != 1 {
		t.Fatalf("first state: %+v", first)
	}

	// Writes that leave s1's state alone, made while the agent waits: it
	// is answered only when its wait runs out, with the newest index and
	// the same state.
	const wait = 500 * time.Millisecond
	type answer struct {
		st      *api.AgentState
		elapsed time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		st, elapsed := get(first.Index, wait.String())
		done <- answer{st, elapsed}
	}()
	<-waiting
	// The held request is counted while it waits.
	if lp, ac := testutil.ToFloat64(handler.metrics.LongPolls), testutil.ToFloat64(handler.metrics.AgentsConnected); lp != 1 || ac != 1 {
		t.Fatalf("while s1's agent waits: rampart_agent_longpolls_held %v, rampart_agents_connected %v, want 1 and 1", lp, ac)
	}
	apply(&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "db", Name: "db-1", Addr: "10.0.0.2", SSHPort: 22}, Now: now})
	last := apply(&raftstore.UserUpsert{User: raftstore.User{ID: "b", Login: "bob", UnixName: "bob", Groups: []string{"dba"}}, EnsureGroups: true, Now: now})
	got := <-done
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(handler.metrics.LongPolls) != 0 || testutil.ToFloat64(handler.metrics.AgentsConnected) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the answered long-poll is still counted as held")
		}
		time.Sleep(time.Millisecond) // polling a condition the handler's return sets
	}
	t.Logf("first index %d, answered with %d", first.Index, got.st.Index)
	if got.elapsed < wait {
		t.Fatalf("answered after %s, before the %s wait ran out, for writes that do not change this server's state", got.elapsed, wait)
	}
	if got.st.Index != last {
		t.Errorf("index %d after the wait, want the newest %d", got.st.Index, last)
	}
	same := *got.st
	same.Index = first.Index
	if !reflect.DeepEqual(&same, first) {
		t.Errorf("state changed: %+v, was %+v", got.st, first)
	}

	// A change to s1's state answers the waiting agent. The first request
	// has been answered, so every signal it gave has been sent: drop them.
	for len(waiting) > 0 {
		<-waiting
	}
	go func() {
		st, elapsed := get(got.st.Index, "60s")
		done <- answer{st, elapsed}
	}()
	<-waiting
	changed := apply(&raftstore.UserUpsert{User: raftstore.User{ID: "c", Login: "carol", UnixName: "carol", Groups: []string{"eng"}}, EnsureGroups: true, Now: now})
	got = <-done
	if got.st.Index != changed || len(got.st.Users) != 2 {
		t.Fatalf("after carol joined eng: index %d users %+v, want index %d and alice and carol", got.st.Index, got.st.Users, changed)
	}
}
