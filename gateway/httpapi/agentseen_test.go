package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// An agent's requests record when it was last seen (what servers ls
// shows), at most once per ServerSeenResolution; and one agent's heartbeat
// does not wake another agent's long poll.
func TestAgentRequestsRecordLastSeen(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", MachineID: "m2"}, Now: now},
	)
	store := f
	h := New(store, nil, slog.New(slog.DiscardHandler))
	clock := now
	h.now = func() time.Time { return clock }
	pki := newTestPKI(t)
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	get := func(client *http.Client, machine string, index uint64, wait string) (*api.AgentState, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/agents/state?index=%d&wait=%s", ts.URL, index, wait), nil)
		req.Header.Set(api.MachineIDHeader, machine)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return nil, 0
		}
		defer resp.Body.Close()
		var st api.AgentState
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
			t.Errorf("HTTP %d", resp.StatusCode)
			return nil, 0
		}
		return &st, time.Since(start)
	}
	lastSeen := func(id string) time.Time {
		_, s, _ := store.State().ServerByID(nil, id)
		return s.LastSeen
	}
	a1, a2 := pki.client(api.RoleAgent, "s1"), pki.client(api.RoleAgent, "s2")

	if !lastSeen("s1").IsZero() {
		t.Fatal("seen before any request")
	}
	first, _ := get(a1, "m1", 0, "")
	if got := lastSeen("s1"); !got.Equal(clock.UTC()) {
		t.Fatalf("last seen %v after a poll at %v", got, clock.UTC())
	}
	// Within the resolution: nothing written.
	before := store.State().LatestIndex()
	get(a1, "m1", 0, "")
	if store.State().LatestIndex() != before {
		t.Fatal("a second poll within the resolution wrote a heartbeat")
	}

	// s1 waits; s2's first poll writes its heartbeat, which must not
	// answer s1's wait early.
	const wait = 500 * time.Millisecond
	done := make(chan time.Duration, 1)
	go func() {
		_, elapsed := get(a1, "m1", first.Index, wait.String())
		done <- elapsed
	}()
	// Let s1's poll start waiting; should s2's poll come first, s1's
	// must not be answered early either.
	time.Sleep(50 * time.Millisecond)
	get(a2, "m2", 0, "")
	if lastSeen("s2").IsZero() {
		t.Fatal("s2's poll recorded nothing")
	}
	if elapsed := <-done; elapsed < wait {
		t.Fatalf("s1's long poll answered after %s, before its %s wait, for s2's heartbeat", elapsed, wait)
	}

	// Once the resolution has passed, s1's next poll records it again,
	// and its own heartbeat does not answer that poll early either.
	clock = clock.Add(raftstore.ServerSeenResolution)
	if _, elapsed := get(a1, "m1", first.Index, wait.String()); elapsed < wait {
		t.Fatalf("s1's long poll answered after %s, before its %s wait, for its own heartbeat", elapsed, wait)
	}
	if got := lastSeen("s1"); !got.Equal(clock.UTC()) {
		t.Fatalf("last seen %v, want %v once the resolution passed", got, clock.UTC())
	}
}
