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
)

// installStore is a one-node store over an FSM for the install and renewal
// endpoints; methods they do not call are left to the nil interface.
type installStore struct {
	Store
	fsm *raftstore.FSM
}

func (s installStore) State() *raftstore.State { return s.fsm.State() }
func (installStore) CheckFresh() error         { return nil }

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
	certPEM, err := c.pki.ca.Issue(ca.RoleAgent, srv.ID, pub, nil, nil, time.Hour)
	if err != nil {
		return nil, err
	}
	return &api.AgentRenewResponse{CertPEM: string(certPEM), CertExpires: time.Now().Add(time.Hour)}, nil
}

// agentClient presents a certificate for key, issued by issuer.
func agentClient(t *testing.T, pki *testPKI, issuer *ca.TLSCA, id string, key crypto.Signer) *http.Client {
	t.Helper()
	certPEM, err := issuer.Issue(ca.RoleAgent, id, key.Public(), nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.EncodeKeyPEM(key)
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

func TestAgentRenewEndpoint(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
	)
	pki := newTestPKI(t)
	cluster := &renewCluster{pki: pki}
	srv := New(installStore{fsm: f}, cluster, slog.New(slog.DiscardHandler))
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.nodeTLS("n1").API
	// The expired certificate's handshake failure is expected.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)

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
	fresh := mustKey(t, elliptic.P256())
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
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
		{name: "fail/not-pem", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: "ssh-ed25519 AAAA", status: 400, want: "not a PEM PUBLIC KEY"},
		{name: "fail/two-blocks", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, fresh.Public()) + publicPEM(t, edPub), status: 400, want: "more than one PEM block"},
		{name: "fail/weak-rsa", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, rsaSmall.Public()), status: 400, want: "at least 2048 bits"},
		{name: "fail/p224", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m1", body: publicPEM(t, mustKey(t, elliptic.P224()).Public()), status: 400, want: "P-256 or P-384"},
		{name: "fail/removed-server", client: agentClient(t, pki, pki.ca, "s-gone", current), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 410, want: "removed from Rampart"},
		{name: "fail/other-machine", client: agentClient(t, pki, pki.ca, "s1", current), machineID: "m2", body: publicPEM(t, fresh.Public()), status: 409, want: "belongs to another machine"},
		{name: "fail/no-certificate", client: pki.client("", ""), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 401, want: "agent certificate is required"},
		{name: "fail/node-certificate", client: pki.client(ca.RoleNode, "n2"), machineID: "m1", body: publicPEM(t, fresh.Public()), status: 403, want: "agent certificate is required"},
		{name: "fail/expired-certificate", client: agentClient(t, pki, pastCA, "s1", current), machineID: "m1", body: publicPEM(t, fresh.Public()), tlsFails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(cluster.calls)
			body, _ := json.Marshal(api.AgentRenewRequest{PublicKey: tc.body})
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/agents/renew", bytes.NewReader(body))
			req.Header.Set(api.MachineIDHeader, tc.machineID)
			resp, err := tc.client.Do(req)
			if tc.tlsFails {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("an expired certificate got HTTP %d", resp.StatusCode)
				}
				if len(cluster.calls) != before {
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
			if tc.status != 200 {
				var e api.Error
				if err := json.Unmarshal(raw, &e); err != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %q, want %q", raw, tc.want)
				}
				if len(cluster.calls) != before {
					t.Fatal("the cluster was asked to renew a refused request")
				}
				return
			}
			var out api.AgentRenewResponse
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
			cert, err := ca.ParseCertPEM([]byte(out.CertPEM))
			if err != nil {
				t.Fatal(err)
			}
			if role, id, _ := ca.Identity(cert); role != ca.RoleAgent || id != "s1" {
				t.Fatalf("renewed certificate names %s %s", role, id)
			}
			if publicPEM(t, cert.PublicKey) != tc.body {
				t.Fatal("renewed certificate is not for the key sent")
			}
		})
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
	srv := New(installStore{fsm: f}, &renewCluster{pki: pki}, slog.New(slog.DiscardHandler))
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	srv.now = func() time.Time { return *clock.Load() }
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.nodeTLS("n1").API
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
