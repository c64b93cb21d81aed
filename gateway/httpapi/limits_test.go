package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// shortTimeouts make the server's timeouts visible in a test's time.
var shortTimeouts = Timeouts{ReadHeader: 300 * time.Millisecond, Read: 400 * time.Millisecond, Write: 400 * time.Millisecond, Idle: time.Second}

// servePlain serves h over plain HTTP on 127.0.0.1:0 with t's timeouts and
// returns its address.
func servePlain(t *testing.T, h *Server, to Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.HTTPServer(nil, to, nil)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// A client that sends the headers of an enrollment and then its body too
// slowly (here: one byte, then nothing) is cut off by the read timeout,
// instead of holding the connection for as long as it likes.
func TestSlowRequestBodyIsCutOff(t *testing.T) {
	h := New(applyAll(t), nil, slog.New(slog.DiscardHandler))
	addr := servePlain(t, h, shortTimeouts)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "POST /v1/agents/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	// Far beyond the server's 400 ms: reaching this deadline means the
	// server was still waiting for the body.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still held the connection after %s of a stalled request body", time.Since(start).Round(time.Millisecond))
	}
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("HTTP %d for a stalled body, want 408", resp.StatusCode)
		}
	}
	// err != nil otherwise: the server closed the connection, as it may.
	t.Logf("stalled body ended after %s (%v)", time.Since(start).Round(time.Millisecond), err)
}

// A long poll outlives the server's read and write timeouts: the agent
// state endpoint moves the connection's deadlines for the wait it serves.
func TestLongPollOutlivesServerTimeouts(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22, MachineID: "m1"}, Now: now},
	)
	h := New(f, nil, slog.New(slog.DiscardHandler))
	pki := newTestPKI(t)
	ts := httptest.NewUnstartedServer(h)
	ts.Config = h.HTTPServer(nil, shortTimeouts, nil)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	agent := pki.client(api.RoleAgent, "s1")
	get := func(index uint64, wait time.Duration) (*api.AgentState, error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/agents/state?index=%d&wait=%s", ts.URL, index, wait), nil)
		req.Header.Set(api.MachineIDHeader, "m1")
		resp, err := agent.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		var st api.AgentState
		return &st, json.NewDecoder(resp.Body).Decode(&st)
	}
	first, err := get(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	const wait = 1500 * time.Millisecond // several times the timeouts
	start := time.Now()
	st, err := get(first.Index, wait)
	if err != nil {
		t.Fatalf("long poll of %s against %s timeouts: %v after %s", wait, shortTimeouts.Write, err, time.Since(start).Round(time.Millisecond))
	}
	if elapsed := time.Since(start); elapsed < wait || st.ServerID != "s1" {
		t.Fatalf("answered after %s with %+v; want the whole %s wait and s1's state", elapsed, st, wait)
	}
}

const testAdminSecret = "rps_test-admin-secret"

// newAdminAPI is the API over a one-node store with an admin service token
// and a raft configuration of n1 and n2, its changes made by a
// control.Service that can remove nodes and that registers servers under
// rule.
func newAdminAPI(t *testing.T) (*httptest.Server, *Server, *raftstoretest.Store) {
	t.Helper()
	now := time.Now()
	st := raftstoretest.New(t, raftstoretest.WithMembers(
		raftstore.Member{ID: "n1", RaftAddr: "127.0.0.1:8300"}, raftstore.Member{ID: "n2", RaftAddr: "127.0.0.2:8300"}))
	st.MustApply(t,
		&raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "st-1", Name: "ci", Hash: api.HashSecret(testAdminSecret), Role: raftstore.ServiceRoleAdmin, CreatedBy: "test"}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n3", RaftAddr: "127.0.0.3:8300", APIAddr: "127.0.0.3:8443"}, Now: now},
	)
	h := New(st, nil, slog.New(slog.DiscardHandler))
	h.SetControl(newControl(st, targetaddr.Rule{}))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h, st
}

// newControl is the admin service over st, auditing through it, with the
// target rule rule.
func newControl(st *raftstoretest.Store, rule targetaddr.Rule) *control.Service {
	return control.New(control.Deps{Store: st, Members: st, Auditor: control.StoreAuditor{Store: st}, Targets: rule})
}

func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRequestBodies(t *testing.T) {
	ts, _, _ := newAdminAPI(t)
	auth := "Bearer " + testAdminSecret
	url := ts.URL + "/v1/projects/web"
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"ok/one-value", `{"description":"x"}`, http.StatusOK},
		{"ok/trailing-space", "{\"description\":\"x\"}\n\t ", http.StatusOK},
		{"fail/second-value", `{"description":"x"}{"description":"y"}`, http.StatusBadRequest},
		{"fail/trailing-garbage", `{"description":"x"} junk`, http.StatusBadRequest},
		{"fail/too-large", `{"description":"` + strings.Repeat("x", maxBody) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := do(t, http.MethodPut, url, auth, tc.body); got != tc.want {
				t.Fatalf("HTTP %d (%s), want %d", got, strings.TrimSpace(body), tc.want)
			}
		})
	}
}

func TestBearerScheme(t *testing.T) {
	ts, _, _ := newAdminAPI(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"ok/Bearer", "Bearer " + testAdminSecret, http.StatusOK},
		{"ok/bearer", "bearer " + testAdminSecret, http.StatusOK},
		{"ok/BEARER", "BEARER " + testAdminSecret, http.StatusOK},
		{"fail/basic", "Basic " + testAdminSecret, http.StatusUnauthorized},
		{"fail/no-token", "Bearer ", http.StatusUnauthorized},
		{"fail/wrong-token", "Bearer rps_nope", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := do(t, http.MethodGet, ts.URL+"/v1/projects", tc.auth, ""); got != tc.want {
				t.Fatalf("HTTP %d (%s), want %d", got, strings.TrimSpace(body), tc.want)
			}
		})
	}
}

// Refused credentials are counted, and a source that keeps failing is
// answered 429 until its bucket refills, even with a valid token.
func TestFailedAuthenticationIsCountedAndLimited(t *testing.T) {
	ts, h, _ := newAdminAPI(t)
	for i := range authFailBurst {
		if got, _ := do(t, http.MethodGet, ts.URL+"/v1/projects", "Bearer rps_guess", ""); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: HTTP %d, want 401", i+1, got)
		}
	}
	if n := h.AuthFailures(); n != authFailBurst {
		t.Fatalf("%d failures counted, want %d", n, authFailBurst)
	}
	if got, _ := do(t, http.MethodGet, ts.URL+"/v1/projects", "Bearer rps_guess", ""); got != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: HTTP %d, want 429", authFailBurst, got)
	}
	if got, _ := do(t, http.MethodGet, ts.URL+"/v1/projects", "Bearer "+testAdminSecret, ""); got != http.StatusTooManyRequests {
		t.Fatalf("valid token from a source over its failure limit: HTTP %d, want 429", got)
	}
	if n := h.AuthFailures(); n != authFailBurst+2 {
		t.Fatalf("%d failures counted, want %d", n, authFailBurst+2)
	}
	// The metric counts the same, by status answered.
	for status, want := range map[string]float64{"401": authFailBurst, "429": 2} {
		if got := testutil.ToFloat64(h.metrics.AuthFailures.WithLabelValues(status)); got != want {
			t.Fatalf("rampart_api_auth_failures_total{status=%q} = %v, want %v", status, got, want)
		}
	}
}

// The unauthenticated endpoints are limited per source.
func TestUnauthenticatedEndpointsAreLimitedPerSource(t *testing.T) {
	ts, h, _ := newAdminAPI(t)
	for _, tc := range []struct {
		path, endpoint string
		burst          int
	}{{"/v1/agents/enroll", "enroll", enrollBurst}, {"/v1/cluster/join", "join", joinBurst}} {
		t.Run(tc.path, func(t *testing.T) {
			for i := range tc.burst {
				// An empty body is refused before it reaches the cluster.
				if got, _ := do(t, http.MethodPost, ts.URL+tc.path, "", ""); got != http.StatusBadRequest {
					t.Fatalf("request %d: HTTP %d, want 400", i+1, got)
				}
			}
			if got, _ := do(t, http.MethodPost, ts.URL+tc.path, "", ""); got != http.StatusTooManyRequests {
				t.Fatalf("request %d: HTTP %d, want 429", tc.burst+1, got)
			}
			if got := testutil.ToFloat64(h.metrics.Refusals.WithLabelValues(tc.endpoint, "rate_limited")); got != 1 {
				t.Fatalf(`rampart_api_refusals_total{endpoint=%q,reason="rate_limited"} = %v, want 1`, tc.endpoint, got)
			}
		})
	}
}

func TestRemoveMember(t *testing.T) {
	ts, _, st := newAdminAPI(t)
	auth := "Bearer " + testAdminSecret
	for _, tc := range []struct {
		id   string
		want int
	}{{"n2", http.StatusOK}, {"n3", http.StatusOK}, {"n9", http.StatusNotFound}} {
		if got, body := do(t, http.MethodDelete, ts.URL+"/v1/cluster/members/"+tc.id, auth, ""); got != tc.want {
			t.Errorf("DELETE %s: HTTP %d (%s), want %d", tc.id, got, strings.TrimSpace(body), tc.want)
		}
	}
	if calls := st.MembershipCalls(); strings.Join(calls, ",") != "remove n2,remove n3" {
		t.Errorf("membership calls %q, want the removal of n2 (a raft member) and n3 (in the nodes table)", calls)
	}
	if _, n, _ := st.State().NodeByID(nil, "n3"); n != nil {
		t.Errorf("node n3 is still in the nodes table: %+v", n)
	}
}

// Failures from an address do not lock out a valid agent certificate from
// it: an unprivileged user on the server could otherwise keep its agent from
// receiving a lock or a deprovisioning by sending requests without one.
func TestFailedAuthenticationSparesValidCertificates(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
	)
	pki := newTestPKI(t)
	ts := startAgentAPI(t, pki, f, nil)
	get := func(client *http.Client) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/agents/state", nil)
		req.Header.Set(api.MachineIDHeader, "m1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	anonymous := pki.client("", "")
	for range authFailBurst {
		get(anonymous)
	}
	if got := get(anonymous); got != http.StatusTooManyRequests {
		t.Fatalf("no certificate after %d failures: HTTP %d, want 429", authFailBurst, got)
	}
	if got := get(pki.client(api.RoleAgent, "s1")); got != http.StatusOK {
		t.Fatalf("the agent's own certificate from that address: HTTP %d, want 200", got)
	}
	// Guessing admin tokens with a certificate (a dead one: its server is
	// gone) is limited on the certificate's own account: it is held back
	// after its own failures, the live agent is not.
	dead := pki.client(api.RoleAgent, "s9")
	guess := func() int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/projects", nil)
		req.Header.Set("Authorization", "Bearer rps_guess")
		resp, err := dead.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range authFailBurst {
		guess()
	}
	if got := guess(); got != http.StatusTooManyRequests {
		t.Fatalf("token guesses with a certificate after %d failures: HTTP %d, want 429", authFailBurst, got)
	}
	if got := get(pki.client(api.RoleAgent, "s1")); got != http.StatusOK {
		t.Fatalf("the live agent after a dead certificate's failures: HTTP %d, want 200", got)
	}
}
