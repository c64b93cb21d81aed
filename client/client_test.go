package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// node is a test node: an httptest TLS server whose handler sees every
// request, and the address a client is given for it.
type node struct {
	ts    *httptest.Server
	calls atomic.Int32
}

func newNode(t *testing.T, h http.HandlerFunc) *node {
	t.Helper()
	n := &node{}
	n.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.calls.Add(1)
		h(w, r)
	}))
	n.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	n.ts.StartTLS()
	t.Cleanup(n.ts.Close)
	return n
}

func (n *node) addr() string { return n.ts.Listener.Addr().String() }

// roots trusts the nodes' httptest certificates.
func roots(nodes ...*node) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, n := range nodes {
		pool.AddCert(n.ts.Certificate())
	}
	return pool
}

// deadAddr is an address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func answer(status int, v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
}

func newClient(t *testing.T, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// A non-2xx answer is an *Error with the status and the server's message
// (and code, when it sends one); a body that is not the API's error gives
// its start as the message.
func TestErrorDecoding(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    client.Error
		text    string
	}{
		{name: "fail/api-error", handler: answer(http.StatusForbidden, api.Error{Error: "enrollment token has expired"}),
			want: client.Error{Status: 403, Message: "enrollment token has expired"}, text: "HTTP 403: enrollment token has expired"},
		{name: "fail/api-error-with-code", handler: answer(http.StatusConflict, api.Error{Error: "server web-1 is already enrolled", Code: "already_enrolled"}),
			want: client.Error{Status: 409, Code: "already_enrolled", Message: "server web-1 is already enrolled"}},
		{name: "fail/plain-text", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "404 page not found", http.StatusNotFound) },
			want: client.Error{Status: 404, Message: "404 page not found"}},
		{name: "fail/empty-body", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) },
			want: client.Error{Status: 502}},
		{name: "fail/long-body-clipped", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, long, http.StatusServiceUnavailable) },
			want: client.Error{Status: 503, Message: long[:512] + "…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, tc.handler)
			c := newClient(t, []string{n.addr()}, client.WithRootCAs(roots(n)))
			_, err := c.Health(context.Background())
			var e *client.Error
			if !errors.As(err, &e) || *e != tc.want {
				t.Fatalf("err = %#v, want %#v", err, tc.want)
			}
			if client.StatusOf(err) != tc.want.Status {
				t.Fatalf("StatusOf = %d, want %d", client.StatusOf(err), tc.want.Status)
			}
			if !strings.HasPrefix(err.Error(), n.addr()+": ") {
				t.Fatalf("err %q does not name the node", err)
			}
			if tc.text != "" && !strings.HasSuffix(err.Error(), tc.text) {
				t.Fatalf("err %q, want it to end in %q", err, tc.text)
			}
		})
	}
	if client.StatusOf(errors.New("connection refused")) != 0 {
		t.Fatal("StatusOf a transport error is not 0")
	}
}

// The long poll passes index, wait and the applied index, with the
// machine id, and decodes the state.
func TestAgentStateQuery(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		answer(http.StatusOK, api.AgentState{Index: 12, ServerID: "srv-1"})(w, r)
	})
	c := newClient(t, []string{n.addr()}, client.WithRootCAs(roots(n)), client.WithMachineID("m-1"))
	ctx := context.Background()
	st, err := c.AgentState(ctx, client.StateQuery{Index: 7, Wait: 5 * time.Minute, Applied: 3})
	if err != nil || st.Index != 12 || st.ServerID != "srv-1" {
		t.Fatalf("AgentState = %+v, %v", st, err)
	}
	if _, err := c.AgentState(ctx, client.StateQuery{Index: 12, Wait: time.Second}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []struct{ index, wait, applied string }{{"7", "5m0s", "3"}, {"12", "1s", ""}} {
		r := got[i]
		q := r.URL.Query()
		if r.Method != http.MethodGet || r.URL.Path != "/v1/agents/state" || q.Get("index") != want.index || q.Get("wait") != want.wait ||
			q.Get(api.AgentAppliedParam) != want.applied || q.Has(api.AgentAppliedParam) != (want.applied != "") {
			t.Errorf("request %d: %s %s, want index=%s wait=%s applied=%q", i, r.Method, r.URL, want.index, want.wait, want.applied)
		}
		if r.Header.Get(api.MachineIDHeader) != "m-1" {
			t.Errorf("request %d: machine id %q", i, r.Header.Get(api.MachineIDHeader))
		}
	}
}

// Each method keeps its callers' rule over the nodes: enrollment and the
// host certificates try each node once, whatever it answered; a renewal
// stops at a refusal; a state pull asks one node and leaves the next to
// the next call, which starts where the last one failed over to.
func TestFailover(t *testing.T) {
	ok := func() http.HandlerFunc {
		return answer(http.StatusOK, map[string]any{"server_id": "srv-1", "cert_pem": "x", "host_certs": []string{"c"}, "index": 1})
	}
	type call func(context.Context, *client.Client) error
	enroll := func(ctx context.Context, c *client.Client) error {
		_, err := c.Enroll(ctx, &api.EnrollRequest{})
		return err
	}
	renew := func(ctx context.Context, c *client.Client) error {
		_, err := c.RenewAgentCert(ctx, &api.AgentRenewRequest{})
		return err
	}
	hostCerts := func(ctx context.Context, c *client.Client) error {
		_, err := c.RenewHostCerts(ctx)
		return err
	}
	state := func(ctx context.Context, c *client.Client) error {
		_, err := c.AgentState(ctx, client.StateQuery{})
		return err
	}
	for _, tc := range []struct {
		name string
		call call
		// second is the second node's answer (the first is dead, the third
		// answers).
		second http.HandlerFunc
		// wantCalls are the calls the second and third nodes get.
		wantCalls  [2]int32
		wantStatus int
		// wantCurrent is the node the client is at afterwards (0-2).
		wantCurrent int
	}{
		{name: "ok/enroll-past-dead-and-refusing", call: enroll, second: answer(http.StatusTooManyRequests, api.Error{Error: "slow down"}),
			wantCalls: [2]int32{1, 1}, wantCurrent: 2},
		{name: "ok/hostcerts-past-dead-and-refusing", call: hostCerts, second: answer(http.StatusForbidden, api.Error{Error: "no"}),
			wantCalls: [2]int32{1, 1}, wantCurrent: 2},
		{name: "ok/renew-past-dead-and-failing", call: renew, second: answer(http.StatusServiceUnavailable, api.Error{Error: "no leader"}),
			wantCalls: [2]int32{1, 1}, wantCurrent: 2},
		{name: "fail/renew-stops-at-refusal", call: renew, second: answer(http.StatusUnauthorized, api.Error{Error: "replaced"}),
			wantCalls: [2]int32{1, 0}, wantStatus: 401, wantCurrent: 1},
		{name: "fail/state-asks-one-node", call: state, second: ok(),
			wantCalls: [2]int32{0, 0}, wantStatus: -1, wantCurrent: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second, third := newNode(t, tc.second), newNode(t, ok())
			addrs := []string{deadAddr(t), second.addr(), third.addr()}
			c := newClient(t, addrs, client.WithRootCAs(roots(second, third)))
			err := tc.call(context.Background(), c)
			switch {
			case tc.wantStatus == 0 && err != nil:
				t.Fatalf("call: %v", err)
			case tc.wantStatus > 0 && client.StatusOf(err) != tc.wantStatus:
				t.Fatalf("call: %v, want HTTP %d", err, tc.wantStatus)
			case tc.wantStatus < 0 && (err == nil || client.StatusOf(err) != 0 || !strings.Contains(err.Error(), addrs[0])):
				t.Fatalf("call: %v, want the dead node's failure", err)
			}
			if got := [2]int32{second.calls.Load(), third.calls.Load()}; got != tc.wantCalls {
				t.Fatalf("the live nodes got %v calls, want %v", got, tc.wantCalls)
			}
			if got := c.Current(); got != addrs[tc.wantCurrent] {
				t.Fatalf("the client is at %s, want node %d (%s)", got, tc.wantCurrent, addrs[tc.wantCurrent])
			}
		})
	}
}

// A round in which every node failed returns each node's error; a client
// that knows no node says so.
func TestAllNodesFail(t *testing.T) {
	refusing := newNode(t, answer(http.StatusForbidden, api.Error{Error: "token used up"}))
	dead := deadAddr(t)
	c := newClient(t, []string{dead, refusing.addr()}, client.WithRootCAs(roots(refusing)))
	_, err := c.Enroll(context.Background(), &api.EnrollRequest{})
	if err == nil || !strings.Contains(err.Error(), dead+": ") || !strings.Contains(err.Error(), refusing.addr()+": HTTP 403: token used up") {
		t.Fatalf("Enroll: %v, want both nodes' errors", err)
	}
	if client.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("StatusOf(%v) = %d", err, client.StatusOf(err))
	}
	none := newClient(t, nil)
	if _, err := none.Enroll(context.Background(), &api.EnrollRequest{}); !errors.Is(err, client.ErrNoAddress) {
		t.Fatalf("Enroll with no address: %v, want ErrNoAddress", err)
	}
}

// WithAddrs follows the caller's list at each call.
func TestWithAddrsFollows(t *testing.T) {
	a, b := newNode(t, answer(http.StatusOK, api.Health{Node: "a"})), newNode(t, answer(http.StatusOK, api.Health{Node: "b"}))
	var mu sync.Mutex
	list := []string{a.addr()}
	c := newClient(t, nil, client.WithRootCAs(roots(a, b)), client.WithAddrs(func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(list)
	}))
	ctx := context.Background()
	if h, err := c.Health(ctx); err != nil || h.Node != "a" {
		t.Fatalf("Health = %+v, %v; want node a", h, err)
	}
	mu.Lock()
	list = []string{b.addr()}
	mu.Unlock()
	if h, err := c.Health(ctx); err != nil || h.Node != "b" {
		t.Fatalf("Health = %+v, %v; want node b after the list changed", h, err)
	}
}

// PostEvents posts to the nodes in turn, moving on after a failure, with
// the machine id the cluster checks, and reads refusals. (Moved from
// agent/events' TestHTTPPoster with the poster it tested.)
func TestPostEvents(t *testing.T) {
	var mu sync.Mutex
	var got []api.AgentEventsRequest
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/agents/events" || r.Header.Get(api.MachineIDHeader) != "m-1" {
			http.Error(w, `{"error":"wrong request"}`, http.StatusBadRequest)
			return
		}
		var req api.AgentEventsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		if len(req.Events) > 1 {
			answer(http.StatusBadRequest, api.Error{Error: "event 1: seq 1 follows 1: seqs must increase"})(w, r)
			return
		}
		answer(http.StatusOK, api.AgentEventsResponse{LastSeq: 9, Accepted: len(req.Events)})(w, r)
	})
	dead := deadAddr(t)
	c := newClient(t, []string{dead, n.addr()}, client.WithRootCAs(roots(n)), client.WithMachineID("m-1"))
	ctx := context.Background()

	if _, err := c.PostEvents(ctx, nil); err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("post to a dead node: %v, want an error naming it", err)
	}
	resp, err := c.PostEvents(ctx, nil)
	if err != nil || resp.LastSeq != 9 {
		t.Fatalf("post to the live node: %+v, %v", resp, err)
	}
	e := api.LoginEvent{Time: time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC), Outcome: api.LoginAccepted, User: "a", Source: "10.0.0.5", Port: 5000, Seq: 1}
	_, err = c.PostEvents(ctx, []api.LoginEvent{e, e})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.Contains(ce.Message, "must increase") {
		t.Fatalf("refused batch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Events == nil || len(got[0].Events) != 0 || len(got[1].Events) != 2 {
		t.Fatalf("requests the node received: %+v (an empty batch must be [], not null)", got)
	}
}

// An administrator's calls carry the service token, go to the paths the
// API serves (names escaped), and send and decode the api types.
func TestAdminCalls(t *testing.T) {
	type seen struct{ method, uri, auth, body string }
	var mu sync.Mutex
	var got []seen
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), strings.TrimSpace(string(b))})
		mu.Unlock()
		switch {
		case r.URL.Path == "/v1/projects":
			answer(http.StatusOK, api.Page[api.Project]{Items: []api.Project{{Name: "web"}}})(w, r)
		case strings.HasPrefix(r.URL.Path, "/v1/ca/tls"):
			_, _ = io.WriteString(w, "-----BEGIN CERTIFICATE-----\n")
		case strings.HasPrefix(r.URL.Path, "/v1/ca/"):
			answer(http.StatusOK, api.CAKeys{Keys: []string{"ssh-ed25519 AAAA"}})(w, r)
		case strings.HasPrefix(r.URL.Path, "/v1/cluster/status"):
			answer(http.StatusOK, api.ClusterStatus{NodeID: "n1", Members: []api.ClusterMember{{ID: "n1", Voter: true}}})(w, r)
		case strings.HasPrefix(r.URL.Path, "/v1/projects/"):
			answer(http.StatusOK, api.Project{Name: "web", Description: "stored"})(w, r)
		case strings.HasPrefix(r.URL.Path, "/v1/servers/"):
			answer(http.StatusOK, api.Server{ID: "db-1", Project: "web"})(w, r)
		default:
			answer(http.StatusOK, struct{}{})(w, r)
		}
	})
	c := newClient(t, []string{"https://" + n.addr()}, client.WithRootCAs(roots(n)), client.WithToken("svc-token"))
	ctx := context.Background()
	check := func(what string, err error, ok bool) {
		t.Helper()
		if err != nil || !ok {
			t.Fatalf("%s: %v (answer not decoded)", what, err)
		}
	}
	ps, err := c.Projects(ctx, client.Consistent())
	check("Projects", err, len(ps) == 1 && ps[0].Name == "web")
	p, err := c.Project(ctx, "web")
	check("Project", err, p.Description == "stored")
	p, err = c.PutProject(ctx, "web", &api.Project{Description: "web servers"})
	check("PutProject", err, p.Description == "stored")
	check("PutGrant", c.PutGrant(ctx, "web", "sre team", &api.Grant{Role: "admin"}), true)
	check("DeleteGrant", c.DeleteGrant(ctx, "web", "sre team"), true)
	s, err := c.PutServer(ctx, "db-1", &api.Server{Project: "web", Name: "db-1"})
	check("PutServer", err, s.ID == "db-1")
	check("DeleteServer", c.DeleteServer(ctx, "db-1"), true)
	for _, f := range []func(context.Context) (*api.CAKeys, error){c.HostCAKeys, c.NodeHostCAKeys, func(ctx context.Context) (*api.CAKeys, error) { return c.UserCAKeys(ctx, "web") }} {
		k, err := f(ctx)
		check("CA keys", err, len(k.Keys) == 1)
	}
	pemCA, err := c.TLSCA(ctx)
	check("TLSCA", err, strings.HasPrefix(string(pemCA), "-----BEGIN CERTIFICATE-----"))
	st, err := c.ClusterStatus(ctx)
	check("ClusterStatus", err, st.NodeID == "n1" && len(st.Members) == 1 && st.Members[0].Voter)
	check("RemoveMember", c.RemoveMember(ctx, "n2"), true)
	check("Do", c.Do(ctx, http.MethodGet, "/v1/projects/web?consistent=true", nil, nil), true)

	want := []seen{
		{"GET", "/v1/projects?consistent=true", "Bearer svc-token", ""},
		{"GET", "/v1/projects/web", "Bearer svc-token", ""},
		{"PUT", "/v1/projects/web", "Bearer svc-token", `{"name":"","description":"web servers","settings":{"record_input":false,"recording_fail_open":false,"allow_local_forward":false,"allow_remote_forward":false,"allow_agent_forward":false,"require_host_certificate":false,"allow_personal_keys":false}}`},
		{"PUT", "/v1/projects/web/grants/sre%20team", "Bearer svc-token", `{"role":"admin"}`},
		{"DELETE", "/v1/projects/web/grants/sre%20team", "Bearer svc-token", ""},
		{"PUT", "/v1/servers/db-1", "Bearer svc-token", `{"id":"","project":"web","name":"db-1","addr":""}`},
		{"DELETE", "/v1/servers/db-1", "Bearer svc-token", ""},
		{"GET", "/v1/ca/host", "Bearer svc-token", ""},
		{"GET", "/v1/ca/node-host", "Bearer svc-token", ""},
		{"GET", "/v1/ca/user/web", "Bearer svc-token", ""},
		{"GET", "/v1/ca/tls", "Bearer svc-token", ""},
		{"GET", "/v1/cluster/status", "Bearer svc-token", ""},
		{"DELETE", "/v1/cluster/members/n2", "Bearer svc-token", ""},
		{"GET", "/v1/projects/web?consistent=true", "Bearer svc-token", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("the node saw %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// New refuses what cannot work: a pin beside other trust, an address that
// is not a node's.
var goodPin = "sha256:" + strings.Repeat("0f", 32)

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs []string
		opts  []client.Option
	}{
		{name: "fail/pin-and-roots", addrs: []string{"10.0.0.1:8443"}, opts: []client.Option{client.WithPin(goodPin), client.WithRootCAs(x509.NewCertPool())}},
		{name: "fail/pin-and-tls-config", addrs: []string{"10.0.0.1:8443"}, opts: []client.Option{client.WithPin(goodPin), client.WithTLSConfig(&tls.Config{})}},
		// A pin asked for is enforced: never an empty or malformed one that
		// would fall back to the system's roots.
		{name: "fail/empty-pin", addrs: []string{"10.0.0.1:8443"}, opts: []client.Option{client.WithPin("")}},
		{name: "fail/short-pin", addrs: []string{"10.0.0.1:8443"}, opts: []client.Option{client.WithPin("sha256:00")}},
		{name: "fail/not-hex-pin", addrs: []string{"10.0.0.1:8443"}, opts: []client.Option{client.WithPin("sha256:" + strings.Repeat("zz", 32))}},
		// Plain http has no TLS for a pin or CA to check.
		{name: "fail/http-with-pin", addrs: []string{"http://10.0.0.1:8443"}, opts: []client.Option{client.WithPin(goodPin)}},
		{name: "fail/http", addrs: []string{"http://10.0.0.1:8443"}},
		{name: "fail/path", addrs: []string{"https://10.0.0.1:8443/v1"}},
		{name: "fail/scheme", addrs: []string{"ftp://10.0.0.1:8443"}},
		{name: "fail/no-host", addrs: []string{"https://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := client.New(tc.addrs, tc.opts...); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

// The client certificate is asked for at each handshake; pooled
// connections made with an older generation are retired before the next
// request, so a renewed certificate is presented at once.
func TestCredentialGeneration(t *testing.T) {
	tca := newTestCA(t, "c-gen")
	pair := func(id string) *tls.Certificate {
		certPEM, keyPEM := issuePEM(t, tca, api.RoleAgent, id)
		p, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	var mu sync.Mutex
	var serials []*big.Int
	n := &node{ts: httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serials = append(serials, r.TLS.PeerCertificates[0].SerialNumber)
		mu.Unlock()
		answer(http.StatusOK, api.AgentEventsResponse{})(w, r)
	}))}
	pool := x509.NewCertPool()
	pool.AddCert(tca.Cert)
	n.ts.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	n.ts.StartTLS()
	t.Cleanup(n.ts.Close)

	var cur atomic.Pointer[tls.Certificate]
	var gen atomic.Uint64
	first, second := pair("srv-1"), pair("srv-1")
	cur.Store(first)
	c := newClient(t, []string{n.addr()}, client.WithRootCAs(roots(n)),
		client.WithClientCertificate(func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cur.Load(), nil }),
		client.WithCredentialGeneration(gen.Load))
	ctx := context.Background()
	post := func() {
		t.Helper()
		if _, err := c.PostEvents(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	post()
	cur.Store(second)
	post() // same generation: the pooled connection, the first certificate
	gen.Add(1)
	post()
	mu.Lock()
	defer mu.Unlock()
	serial := func(p *tls.Certificate) *big.Int {
		leaf, _ := x509.ParseCertificate(p.Certificate[0])
		return leaf.SerialNumber
	}
	want := []*big.Int{serial(first), serial(first), serial(second)}
	if len(serials) != 3 || serials[0].Cmp(want[0]) != 0 || serials[1].Cmp(want[1]) != 0 || serials[2].Cmp(want[2]) != 0 {
		t.Fatalf("requests presented %v, want %v", serials, want)
	}
}

// A redirect is never followed: the token and body stay with the node the
// caller chose.
func TestRedirectRefused(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	pool.AddCert(other.Certificate())
	c, err := client.New([]string{srv.URL}, client.WithRootCAs(pool), client.WithToken("secret-token"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodPost, "/v1/projects", map[string]string{"a": "b"}, nil)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("err = %v, want a refused redirect", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}
