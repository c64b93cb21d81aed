package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// testHostCA signs host certificates as the cluster does: valid from a
// minute before issue.
type testHostCA struct {
	signer ssh.Signer
	line   string
}

func newTestHostCA(t *testing.T) *testHostCA {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &testHostCA{signer: s, line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))}
}

func (c *testHostCA) cert(t *testing.T, issued time.Time, validity time.Duration) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: k, CertType: ssh.HostCert, KeyId: "rampart host web-1", ValidPrincipals: []string{"web-1"},
		ValidAfter: uint64(issued.Add(-time.Minute).Unix()), ValidBefore: uint64(issued.Add(validity).Unix())}
	if err := cert.SignCert(rand.Reader, c.signer); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
}

func TestHostCertsRenewAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	hca, other := newTestHostCA(t), newTestHostCA(t)
	ninety := 90 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		certs    []string
		obtained time.Time
		hostCA   string
		now      time.Time
		due      bool
		at       time.Time // checked when not zero
		reason   string
	}{
		{name: "ok/fresh-90-days", certs: []string{hca.cert(t, t0, ninety)}, obtained: t0, hostCA: hca.line, now: t0.Add(59 * 24 * time.Hour),
			at: t0.Add(60 * 24 * time.Hour)},
		{name: "due/two-thirds-of-90-days", certs: []string{hca.cert(t, t0, ninety)}, obtained: t0, hostCA: hca.line, now: t0.Add(60 * 24 * time.Hour),
			due: true, reason: "two thirds"},
		{name: "ok/20s-counted-from-receipt-not-backdated-start", certs: []string{hca.cert(t, t0, 21*time.Second)}, obtained: t0, hostCA: hca.line,
			now: t0.Add(13 * time.Second), at: t0.Add(14 * time.Second)},
		{name: "due/20s-at-two-thirds", certs: []string{hca.cert(t, t0, 21*time.Second)}, obtained: t0, hostCA: hca.line, now: t0.Add(14 * time.Second),
			due: true},
		{name: "due/expired", certs: []string{hca.cert(t, t0, time.Hour)}, obtained: t0, now: t0.Add(2 * time.Hour), due: true},
		{name: "ok/no-obtained-time-counts-from-start", certs: []string{hca.cert(t, t0, 2*time.Hour-time.Minute)}, hostCA: hca.line,
			now: t0, at: t0.Add(79 * time.Minute)},
		{name: "ok/shortest-lived-decides", certs: []string{hca.cert(t, t0, ninety), hca.cert(t, t0, 3*time.Hour)}, obtained: t0, hostCA: hca.line,
			now: t0, at: t0.Add(2 * time.Hour)},
		{name: "due/rotated-host-ca", certs: []string{hca.cert(t, t0, ninety)}, obtained: t0, hostCA: other.line, now: t0.Add(time.Minute),
			due: true, reason: "no longer signs with"},
		{name: "ok/host-ca-unknown", certs: []string{hca.cert(t, t0, ninety)}, obtained: t0, now: t0.Add(time.Minute), at: t0.Add(60 * 24 * time.Hour)},
		{name: "due/unparsable", certs: []string{"ssh-ed25519 garbage"}, obtained: t0, now: t0, due: true, reason: "does not parse"},
		{name: "ok/none", now: t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, reason := hostCertsRenewAt(tc.certs, tc.obtained, tc.hostCA)
			if tc.certs == nil {
				if !at.IsZero() {
					t.Fatalf("no certificates: renew at %s, want never", at)
				}
				return
			}
			if due := !tc.now.Before(at); due != tc.due {
				t.Fatalf("at %s: renew at %s (%s); due = %v, want %v", tc.now, at, reason, due, tc.due)
			}
			if !tc.at.IsZero() && !at.Equal(tc.at) {
				t.Errorf("renew at %s, want %s", at, tc.at)
			}
			if tc.reason != "" && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want it to hold %q", reason, tc.reason)
			}
		})
	}
}

// TestHostCertRenewerAsksWhenDue: nothing is asked before the certificates
// are due; when they are, the cluster's answer is checked, kept in memory and
// in identity.json; an answer that does not check out is refused and retried
// later.
func TestHostCertRenewerAsksWhenDue(t *testing.T) {
	hca, rogue := newTestHostCA(t), newTestHostCA(t)
	t0 := time.Now().Truncate(time.Second)
	var calls atomic.Int32
	var signer atomic.Pointer[testHostCA]
	signer.Store(rogue)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/agents/hostcerts" || r.Header.Get(api.MachineIDHeader) != "m-1" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		_ = json.NewEncoder(w).Encode(api.AgentHostCertsResponse{HostCerts: []string{signer.Load().cert(t, time.Now(), 30*time.Second)}, HostCAKey: hca.line})
	}))
	defer ts.Close()
	dir := t.TempDir()
	id := &Identity{ServerID: "srv-1", MachineID: "m-1", Cluster: []string{strings.TrimPrefix(ts.URL, "https://")},
		HostCerts: []string{hca.cert(t, t0, 30*time.Second)}, HostCertsObtained: t0}
	b, _ := json.Marshal(id)
	if err := os.WriteFile(filepath.Join(dir, identityFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	now := t0
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	cl, err := client.New(id.Cluster, client.WithRootCAs(roots), client.WithMachineID("m-1"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hostCertRenewer{id: id, dataDir: dir, cluster: cl, logger: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	ctx := context.Background()

	now = t0.Add(19 * time.Second)
	if h.maybeRenew(ctx, hca.line) || calls.Load() != 0 {
		t.Fatalf("renewed %d times a third before the certificate is due", calls.Load())
	}
	if d := h.deadline(hca.line); !d.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("deadline %s, want two thirds into the lifetime, %s", d, t0.Add(20*time.Second))
	}

	// Due; the answer is signed by another CA than the one it names.
	now = t0.Add(20 * time.Second)
	first := id.HostCerts[0]
	if h.maybeRenew(ctx, hca.line) || calls.Load() != 1 || id.HostCerts[0] != first {
		t.Fatalf("a renewal answered with certificates of another CA was accepted (calls %d)", calls.Load())
	}
	if d := h.deadline(hca.line); !d.Equal(now.Add(time.Second)) {
		t.Errorf("after a failure the next attempt is at %s, want %s", d, now.Add(time.Second))
	}
	if h.maybeRenew(ctx, hca.line) || calls.Load() != 1 {
		t.Fatal("retried before the retry was due")
	}

	signer.Store(hca)
	now = now.Add(time.Second)
	if !h.maybeRenew(ctx, hca.line) || calls.Load() != 2 {
		t.Fatalf("not renewed when due (calls %d)", calls.Load())
	}
	if id.HostCerts[0] == first || !id.HostCertsObtained.Equal(now) {
		t.Fatal("the renewed certificates are not the ones in use")
	}
	stored, err := LoadIdentity(dir)
	if err != nil || len(stored.HostCerts) != 1 || stored.HostCerts[0] != id.HostCerts[0] || !stored.HostCertsObtained.Equal(now.UTC()) {
		t.Fatalf("identity.json does not hold the renewed certificates: %+v, %v", stored, err)
	}
	if h.maybeRenew(ctx, hca.line) || calls.Load() != 2 {
		t.Fatal("renewed again at once")
	}

	// A host CA rotation makes them due at once.
	if !h.maybeRenew(ctx, rogue.line) || calls.Load() != 3 {
		t.Fatalf("not renewed after the host CA changed (calls %d)", calls.Load())
	}
}

// Host certificates are renewed at the nodes the agent has learned of, as
// the pull loop and the certificate renewer find them: the node the token
// named may be gone by the time they are due.
func TestHostCertRenewerFollowsTheCluster(t *testing.T) {
	c := newRenewCluster(t)
	dir, id := c.enroll(t, time.Hour)
	hca := newTestHostCA(t)
	var a, b *httptest.Server
	var hostCertCalls atomic.Int32
	serve := func() *httptest.Server {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/agents/state", func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(api.AgentState{Index: 5, ServerID: "srv-1", HostCAKey: hca.line,
				Cluster: []string{a.Listener.Addr().String(), b.Listener.Addr().String()}})
		})
		mux.HandleFunc("POST /v1/agents/hostcerts", func(w http.ResponseWriter, _ *http.Request) {
			hostCertCalls.Add(1)
			_ = json.NewEncoder(w).Encode(api.AgentHostCertsResponse{HostCerts: []string{hca.cert(t, time.Now(), time.Hour)}, HostCAKey: hca.line})
		})
		ts := httptest.NewUnstartedServer(mux)
		startNodeTLS(t, ts, c.ca, "n")
		return ts
	}
	a, b = serve(), serve()
	id.Cluster = []string{a.Listener.Addr().String()} // the token named only a
	id.HostCerts = []string{hca.cert(t, time.Now(), time.Hour)}
	raw, _ := json.Marshal(id)
	if err := os.WriteFile(filepath.Join(dir, identityFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewPuller(dir, id, time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	a.Close()
	h := newHostCertRenewer(p, dir, discard)
	if _, err := h.renewOnce(ctx, time.Now()); err != nil {
		t.Fatalf("host certificates with the token's node gone: %v", err)
	}
	if hostCertCalls.Load() != 1 {
		t.Fatalf("%d host certificate requests reached the cluster, want 1", hostCertCalls.Load())
	}
}
