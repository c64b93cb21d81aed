package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// renewCluster issues renewed certificates with the test CA, as the node's
// clusterService does with the cluster's.
type renewCluster struct {
	Cluster
	pki   *testPKI
	calls []string
}

func (c *renewCluster) RenewAgent(_ context.Context, srv *raftstore.Server, req *api.AgentRenewRequest) (*api.AgentRenewResponse, error) {
	c.calls = append(c.calls, srv.ID)
	block, _ := pem.Decode([]byte(req.PublicKey))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	certPEM, err := c.pki.ca.Issue(api.RoleAgent, srv.ID, pub, nil, nil, time.Hour)
	if err != nil {
		return nil, err
	}
	return &api.AgentRenewResponse{CertPEM: string(certPEM), CertExpires: time.Now().Add(time.Hour)}, nil
}

// agentClient presents a certificate for key, issued by issuer.
func agentClient(t *testing.T, pki *testPKI, issuer *ca.TLSCA, id string, key crypto.Signer) *http.Client {
	t.Helper()
	certPEM, err := issuer.Issue(api.RoleAgent, id, key.Public(), nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pki.nodeTLS("n-root").Pool, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func publicPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func mustKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// enrolledFSM holds project web and server s1 enrolled from machine m1 with
// agent key key, then cmds.
func enrolledFSM(t *testing.T, key crypto.PublicKey, cmds ...raftstore.Command) *raftstoretest.Store {
	t.Helper()
	now := time.Now()
	return applyAll(t, append([]raftstore.Command{
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1",
			AgentKeyHash: keyHashOf(t, key)}, SetAgentKey: true, Now: now},
	}, cmds...)...)
}

func keyHashOf(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	h, err := raftstore.HashAgentKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startAgentAPI serves the API over store with the test PKI's node
// certificate.
func startAgentAPI(t *testing.T, pki *testPKI, store Store, cluster Cluster) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(New(store, cluster, slog.New(slog.DiscardHandler)))
	ts.TLS = pki.serverTLS("n1")
	// An expired certificate's handshake failure is expected.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// agentCall is one request of an agent and what it got.
type agentCall struct {
	status int
	err    string // the API's error message
	renew  api.AgentRenewResponse
}

// renewWith asks for a certificate for pub with client, as machine m1.
func renewWith(t *testing.T, ts *httptest.Server, client *http.Client, pub crypto.PublicKey) agentCall {
	t.Helper()
	body, _ := json.Marshal(api.AgentRenewRequest{PublicKey: publicPEM(t, pub)})
	return agentDo(t, client, http.MethodPost, ts.URL+"/v1/agents/renew", body)
}

// pullState asks for the agent state with client, as machine m1.
func pullState(t *testing.T, ts *httptest.Server, client *http.Client) agentCall {
	t.Helper()
	return agentDo(t, client, http.MethodGet, ts.URL+"/v1/agents/state", nil)
}

func agentDo(t *testing.T, client *http.Client, method, url string, body []byte) agentCall {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set(api.MachineIDHeader, "m1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := agentCall{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("HTTP %d with a body that is not an API error: %q", resp.StatusCode, raw)
		}
		out.err = e.Error
	} else if strings.HasSuffix(url, "/renew") {
		if err := json.Unmarshal(raw, &out.renew); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// clientFor presents certPEM (from a renewal) with key.
func clientFor(t *testing.T, pki *testPKI, certPEM string, key crypto.Signer) *http.Client {
	t.Helper()
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pki.nodeTLS("n-root").Pool, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestAgentRenewEndpoint(t *testing.T) {
	now := time.Now()
	pki := newTestPKI(t)
	// The same CA key with a clock an hour and a half behind issues a
	// certificate that has expired by now.
	kek, err := ca.NewKEK(bytes.Repeat([]byte{7}, ca.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := pki.ca.SealKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	pastCA, err := ca.LoadTLSCA(pki.ca.CertPEM, sealed, kek, func() time.Time { return now.Add(-90 * time.Minute) })
	if err != nil {
		t.Fatal(err)
	}

	current := mustKey(t, elliptic.P256())
	retired := mustKey(t, elliptic.P256())
	fresh := mustKey(t, elliptic.P256())
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// s1 enrolled with retired and renewed to current.
	renewedOnce := &raftstore.ServerAgentKey{ID: "s1", KeyHash: keyHashOf(t, current.Public()), Replaces: keyHashOf(t, retired.Public()), Now: now}
	tests := []struct {
		name      string
		client    *http.Client
		machineID string
		body      string
		status    int
		want      string
		tlsFails  bool
	}{
		{name: "ok/new-p256-key", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 200},
		{name: "ok/ed25519-key", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, edPub), status: 200},
		{name: "fail/same-key", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, current.Public()), status: 400, want: "needs a new key pair"},
		{name: "fail/retired-key", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, retired.Public()), status: 400, want: "retired by the last renewal"},
		{name: "fail/not-pem", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: "ssh-ed25519 AAAA", status: 400, want: "not a PEM PUBLIC KEY"},
		{name: "fail/two-blocks", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, fresh.Public()) + publicPEM(t, edPub), status: 400, want: "more than one PEM block"},
		{name: "fail/weak-rsa", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, rsaSmall.Public()), status: 400, want: "at least 2048 bits"},
		{name: "fail/p224", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, mustKey(t, elliptic.P224()).Public()), status: 400, want: "P-256 or P-384"},
		{name: "fail/removed-server", client: agentClient(t, pki, pki.ca, "s-gone", current), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 410, want: "removed from Rampart"},
		{name: "fail/other-machine", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m2", body: publicPEM(t, fresh.Public()), status: 409, want: "belongs to another machine"},
		{name: "fail/retired-certificate-for-another-key", client: agentClient(t, pki, pki.ca, "s1", retired), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 401, want: "was replaced"},
		{name: "fail/certificate-of-an-unknown-key", client: agentClient(t, pki, pki.ca, "s1", fresh), machineID: "m1", body: publicPEM(t, edPub), status: 401, want: "was replaced"},
		{name: "fail/no-certificate", client: pki.client("", ""), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 401, want: "agent certificate is required"},
		{name: "fail/node-certificate", client: pki.client(api.RoleNode, "n2"), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 403, want: "agent certificate is required"},
		{name: "fail/expired-certificate", client: agentClient(t, pki, pastCA, "s1", current), machineID: "m1", body: publicPEM(t, fresh.Public()), tlsFails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := enrolledFSM(t, retired.Public(), renewedOnce)
			cluster := &renewCluster{pki: pki}
			ts := startAgentAPI(t, pki, f, cluster)
			body, _ := json.Marshal(api.AgentRenewRequest{PublicKey: tc.body})
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/agents/renew", bytes.NewReader(body))
			req.Header.Set(api.MachineIDHeader, tc.machineID)
			resp, err := tc.client.Do(req)
			_, before, _ := f.State().ServerByID(nil, "s1")
			if tc.tlsFails {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("an expired certificate got HTTP %d", resp.StatusCode)
				}
				if len(cluster.calls) != 0 {
					t.Fatal("the cluster was asked to renew")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, raw, tc.status)
			}
			_, after, _ := f.State().ServerByID(nil, "s1")
			if tc.status != 200 {
				var e api.Error
				if err := json.Unmarshal(raw, &e); err != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %q, want %q", raw, tc.want)
				}
				if len(cluster.calls) != 0 {
					t.Fatal("the cluster was asked to renew a refused request")
				}
				if after != nil && after.AgentKeyHash != before.AgentKeyHash {
					t.Fatal("a refused renewal moved the agent key")
				}
				return
			}
			var out api.AgentRenewResponse
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
			cert, err := api.ParseCertPEM([]byte(out.CertPEM))
			if err != nil {
				t.Fatal(err)
			}
			if role, id, _ := api.Identity(cert); role != api.RoleAgent || id != "s1" {
				t.Fatalf("renewed certificate names %s %s", role, id)
			}
			if publicPEM(t, cert.PublicKey) != tc.body {
				t.Fatal("renewed certificate is not for the key sent")
			}
			if after.AgentKeyHash != keyHashOf(t, cert.PublicKey) || after.PrevAgentKeyHash != keyHashOf(t, current.Public()) {
				t.Fatal("the renewal did not record the new key as the server's agent key")
			}
		})
	}
}

// TestAgentCertificateReplaced follows one server's agent key through
// renewals, a lost answer and a re-enrollment: at each step only the
// certificate of the recorded key is accepted, and the replaced one only
// to fetch the certificate of the key that replaced it.
func TestAgentCertificateReplaced(t *testing.T) {
	pki := newTestPKI(t)
	k1, k2, k3, k9 := mustKey(t, elliptic.P256()), mustKey(t, elliptic.P256()), mustKey(t, elliptic.P256()), mustKey(t, elliptic.P256())
	f := enrolledFSM(t, k1.Public())
	cluster := &renewCluster{pki: pki}
	ts := startAgentAPI(t, pki, f, cluster)
	old := agentClient(t, pki, pki.ca, "s1", k1)
	expect := func(step string, got agentCall, status int, want string) {
		t.Helper()
		if got.status != status || !strings.Contains(got.err, want) {
			t.Fatalf("%s: HTTP %d %q, want %d %q", step, got.status, got.err, status, want)
		}
	}
	expectKey := func(step string, cur, prev crypto.PublicKey) {
		t.Helper()
		_, srv, _ := f.State().ServerByID(nil, "s1")
		wantPrev := ""
		if prev != nil {
			wantPrev = keyHashOf(t, prev)
		}
		if srv.AgentKeyHash != keyHashOf(t, cur) || srv.PrevAgentKeyHash != wantPrev {
			t.Fatalf("%s: agent key %.8s prev %.8s, want %.8s prev %.8s", step, srv.AgentKeyHash, srv.PrevAgentKeyHash, keyHashOf(t, cur), wantPrev)
		}
	}

	expect("enrolled: pull", pullState(t, ts, old), 200, "")
	renewed := renewWith(t, ts, old, k2.Public())
	expect("renew k1 -> k2", renewed, 200, "")
	expectKey("renew k1 -> k2", k2.Public(), k1.Public())
	// The same kept-alive connection: the old certificate is dead at once.
	expect("renewed: pull with the old certificate", pullState(t, ts, old), 401, "was replaced (renewed or re-enrolled)")
	expect("renewed: pull with a new connection of the old certificate", pullState(t, ts, agentClient(t, pki, pki.ca, "s1", k1)), 401, "was replaced")
	second := clientFor(t, pki, renewed.renew.CertPEM, k2)
	expect("renewed: pull with the new certificate", pullState(t, ts, second), 200, "")

	// The answer was lost: the agent asks again with its old certificate
	// and the same new key, and gets that key's certificate again.
	again := renewWith(t, ts, old, k2.Public())
	expect("lost answer: renew again with the old certificate", again, 200, "")
	if cert, _ := api.ParseCertPEM([]byte(again.renew.CertPEM)); cert == nil || keyHashOf(t, cert.PublicKey) != keyHashOf(t, k2.Public()) {
		t.Fatal("lost answer: the certificate fetched again is not for k2")
	}
	expectKey("lost answer", k2.Public(), k1.Public())
	expect("lost answer: pull with the fetched certificate", pullState(t, ts, clientFor(t, pki, again.renew.CertPEM, k2)), 200, "")
	// ... but the old certificate renews for nothing else, and still pulls
	// nothing.
	expect("old certificate: renew for another key", renewWith(t, ts, old, k3.Public()), 401, "was replaced")
	expect("old certificate: pull after the repeat", pullState(t, ts, old), 401, "was replaced")
	expectKey("old certificate refused", k2.Public(), k1.Public())

	// Alternating two keys does not bring the old certificate back.
	expect("renew k2 -> k1", renewWith(t, ts, second, k1.Public()), 400, "retired by the last renewal")
	third := renewWith(t, ts, second, k3.Public())
	expect("renew k2 -> k3", third, 200, "")
	expectKey("renew k2 -> k3", k3.Public(), k2.Public())
	expect("renewed twice: the first certificate fetches nothing", renewWith(t, ts, old, k2.Public()), 401, "was replaced")
	expect("renewed twice: pull with the second certificate", pullState(t, ts, second), 401, "was replaced")
	thirdClient := clientFor(t, pki, third.renew.CertPEM, k3)
	expect("renewed twice: pull with the third certificate", pullState(t, ts, thirdClient), 200, "")

	// Re-enrollment under the same server id kills every earlier
	// certificate, the replaced one included.
	if _, err := f.Apply(t.Context(), &raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1",
		AgentKeyHash: keyHashOf(t, k9.Public())}, SetAgentKey: true, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	expect("re-enrolled: pull with the last renewed certificate", pullState(t, ts, thirdClient), 401, "was replaced")
	expect("re-enrolled: renew with it", renewWith(t, ts, thirdClient, mustKey(t, elliptic.P256()).Public()), 401, "was replaced")
	expect("re-enrolled: fetch again with the replaced one", renewWith(t, ts, second, k3.Public()), 401, "was replaced")
	expect("re-enrolled: pull with the new enrollment's certificate", pullState(t, ts, agentClient(t, pki, pki.ca, "s1", k9)), 200, "")
	if len(cluster.calls) != 3 {
		t.Fatalf("the cluster issued %d certificates, want 3 (k2, k2 again, k3)", len(cluster.calls))
	}
}

// laggingStore is a follower that has not applied the leader's latest
// writes until a ConsistentRead makes it catch up; writes go to the leader.
type laggingStore struct {
	*raftstoretest.Store // the leader
	stale                *raftstoretest.Store
	caughtUp             atomic.Bool
	reads                atomic.Int32
}

func (s *laggingStore) State() *raftstore.State {
	if s.caughtUp.Load() {
		return s.Store.State()
	}
	return s.stale.State()
}
func (s *laggingStore) FSM() *raftstore.FSM {
	if s.caughtUp.Load() {
		return s.Store.FSM()
	}
	return s.stale.FSM()
}
func (s *laggingStore) ConsistentRead(context.Context) error {
	s.reads.Add(1)
	s.caughtUp.Store(true)
	return nil
}

// TestAgentKeyOnLaggingFollower: a node that has not applied a renewal yet
// neither refuses the renewed certificate nor lets the replaced one renew.
func TestAgentKeyOnLaggingFollower(t *testing.T) {
	pki := newTestPKI(t)
	k1, k2, k3 := mustKey(t, elliptic.P256()), mustKey(t, elliptic.P256()), mustKey(t, elliptic.P256())
	renewal := &raftstore.ServerAgentKey{ID: "s1", KeyHash: keyHashOf(t, k2.Public()), Replaces: keyHashOf(t, k1.Public()), Now: time.Now()}
	cases := []struct {
		name      string
		call      func(t *testing.T, ts *httptest.Server) agentCall
		status    int
		want      string
		wantReads int32
	}{
		{name: "ok/current-certificate-needs-no-catch-up", status: 200,
			call: func(t *testing.T, ts *httptest.Server) agentCall {
				return pullState(t, ts, agentClient(t, pki, pki.ca, "s1", k1))
			}},
		{name: "ok/renewed-certificate-after-catching-up", status: 200, wantReads: 1,
			call: func(t *testing.T, ts *httptest.Server) agentCall {
				return pullState(t, ts, agentClient(t, pki, pki.ca, "s1", k2))
			}},
		{name: "fail/unknown-key-after-catching-up", status: 401, want: "was replaced", wantReads: 1,
			call: func(t *testing.T, ts *httptest.Server) agentCall {
				return pullState(t, ts, agentClient(t, pki, pki.ca, "s1", k3))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The follower's replica still has k1; the leader has moved to k2,
			// except in the first case, where nothing has moved.
			leader := enrolledFSM(t, k1.Public(), renewal)
			if tc.name == "ok/current-certificate-needs-no-catch-up" {
				leader = enrolledFSM(t, k1.Public())
			}
			st := &laggingStore{Store: leader, stale: enrolledFSM(t, k1.Public())}
			ts := startAgentAPI(t, pki, st, &renewCluster{pki: pki})
			got := tc.call(t, ts)
			if got.status != tc.status || !strings.Contains(got.err, tc.want) {
				t.Fatalf("HTTP %d %q, want %d %q", got.status, got.err, tc.status, tc.want)
			}
			if n := st.reads.Load(); n != tc.wantReads {
				t.Fatalf("%d consistent reads, want %d", n, tc.wantReads)
			}
		})
	}

	// The follower admits the replaced certificate (its replica says it is
	// current), but the leader's compare-and-set refuses the renewal.
	st := &laggingStore{Store: enrolledFSM(t, k1.Public(), renewal), stale: enrolledFSM(t, k1.Public())}
	cluster := &renewCluster{pki: pki}
	ts := startAgentAPI(t, pki, st, cluster)
	got := renewWith(t, ts, agentClient(t, pki, pki.ca, "s1", k1), k3.Public())
	if got.status != 401 || !strings.Contains(got.err, "was replaced") || len(cluster.calls) != 0 {
		t.Fatalf("renewal with the replaced key on a lagging follower: HTTP %d %q, %d certificates issued", got.status, got.err, len(cluster.calls))
	}
}

// A connection opened while the agent's certificate was valid is refused
// once it has expired, even though no new handshake happens.
func TestAgentCertificateExpiresOnKeptAliveConnection(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
	)
	pki := newTestPKI(t)
	srv := New(f, &renewCluster{pki: pki}, slog.New(slog.DiscardHandler))
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	srv.now = func() time.Time { return *clock.Load() }
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	client := agentClient(t, pki, pki.ca, "s1", mustKey(t, elliptic.P256()))
	renew := func() int {
		t.Helper()
		body := strings.NewReader(`{"public_key":""}`)
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/agents/renew", body)
		req.Header.Set(api.MachineIDHeader, "m1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := renew(); code == http.StatusUnauthorized {
		t.Fatalf("a valid certificate got HTTP %d", code)
	}
	later := now.Add(24 * 365 * time.Hour)
	clock.Store(&later)
	if code := renew(); code != http.StatusUnauthorized {
		t.Fatalf("an expired certificate on a kept-alive connection got HTTP %d, want 401", code)
	}
}
