package client_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/ca"
)

// The pin is checked against the gateway's own node TLS configuration:
// what a node serves is what an enrolling agent or a joining node pins.

func newTestCA(t *testing.T, id string) *ca.TLSCA {
	t.Helper()
	c, err := ca.NewTLSCA(id, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issuePEM issues role/id from c on 127.0.0.1 and returns cert and key PEM.
func issuePEM(t *testing.T, c *ca.TLSCA, role, id string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ca.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	if certPEM, err = c.Issue(role, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, 0); err != nil {
		t.Fatal(err)
	}
	if keyPEM, err = api.EncodeKeyPEM(key); err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestPinnedTLS(t *testing.T) {
	cluster, other := newTestCA(t, "cluster-1"), newTestCA(t, "cluster-2")
	serve := func(t *testing.T, cfg *tls.Config) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "hello")
		}))
		srv.TLS = cfg
		if cfg.GetCertificate != nil && len(cfg.Certificates) == 0 {
			// httptest would add a certificate of its own, which wins.
			cur, err := cfg.GetCertificate(nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.TLS = cfg.Clone()
			srv.TLS.Certificates = []tls.Certificate{*cur}
		}
		// Refused handshakes are the point of most cases: keep them quiet.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	nodeAPI := func(c *ca.TLSCA) *tls.Config {
		certPEM, keyPEM := issuePEM(t, c, api.RoleNode, "node-1")
		nt, err := ca.NewNodeTLS(c.CertPEM, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return nt.API
	}
	// leafOnly presents a cluster node certificate without the CA after it.
	leafOnly := func() *tls.Config {
		certPEM, keyPEM := issuePEM(t, cluster, api.RoleNode, "node-1")
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	// impostor presents a leaf from another CA followed by the pinned CA's
	// certificate, which anyone can copy.
	impostor := func() *tls.Config {
		cfg := nodeAPI(other).Clone()
		cur, err := cfg.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		pair := *cur
		cfg.GetCertificate = nil
		pair.Certificate = [][]byte{pair.Certificate[0], cluster.Cert.Raw}
		cfg.Certificates = []tls.Certificate{pair}
		return cfg
	}
	// withChain presents a leaf followed by the cluster CA's certificate.
	withChain := func(certPEM, keyPEM []byte) *tls.Config {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		pair.Certificate = append(pair.Certificate, cluster.Cert.Raw)
		return &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	// An enrolled server's agent certificate, as issued.
	agentCert := func() *tls.Config { return withChain(issuePEM(t, cluster, api.RoleAgent, "srv-1")) }
	// An agent certificate that (as before agents lost ServerAuth) could
	// serve TLS: the role alone must refuse it.
	agentServerAuth := func() *tls.Config {
		key, err := ca.NewNodeKey()
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "agent srv-1"},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			URIs:        []*url.URL{api.IdentityURI(api.RoleAgent, "srv-1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, cluster.Cert, key.Public(), cluster.Key)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := api.EncodeKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		return withChain(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
	}
	cases := []struct {
		name     string
		server   *tls.Config
		pin      string
		want     error
		wantText string
	}{
		{name: "ok/pinned-ca", server: nodeAPI(cluster), pin: cluster.Pin()},
		{name: "fail/agent-certificate", server: agentCert(), pin: cluster.Pin(), wantText: "server certificate"},
		{name: "fail/agent-certificate-with-server-auth", server: agentServerAuth(), pin: cluster.Pin(), wantText: `names agent "srv-1", not a node`},
		{name: "fail/other-ca", server: nodeAPI(other), pin: cluster.Pin(), want: client.ErrPinMismatch},
		{name: "fail/chain-without-ca", server: leafOnly(), pin: cluster.Pin(), want: client.ErrPinMismatch},
		{name: "fail/copied-ca-cert-after-foreign-leaf", server: impostor(), pin: cluster.Pin(), wantText: "server certificate"},
		{name: "fail/malformed-pin", server: nodeAPI(cluster), pin: "sha256:00", want: client.ErrPinMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := serve(t, tc.server)
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: client.PinnedTLS(tc.pin)}, Timeout: 30 * time.Second}
			t.Cleanup(hc.CloseIdleConnections)
			resp, err := hc.Get(url)
			if tc.want == nil && tc.wantText == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if body, _ := io.ReadAll(resp.Body); string(body) != "hello" {
					t.Fatalf("body %q", body)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("the client trusted the server")
			}
			t.Logf("refused: %v", err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err = %v, want it to say %q", err, tc.wantText)
			}
		})
	}
}

// Enroll and Join trust only the pinned CA: at the handshake, and in the
// CA the answer hands over (which the caller then keeps as its only trust).
func TestPinnedCalls(t *testing.T) {
	cluster, other := newTestCA(t, "cluster-1"), newTestCA(t, "cluster-2")
	serve := func(t *testing.T, c *ca.TLSCA, caPEM []byte) string {
		certPEM, keyPEM := issuePEM(t, c, api.RoleNode, "node-1")
		nt, err := ca.NewNodeTLS(c.CertPEM, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := nt.API.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1/agents/enroll":
				_ = json.NewEncoder(w).Encode(api.EnrollResponse{ServerID: "srv-1", CAPEM: string(caPEM)})
			case "/v1/cluster/join":
				_ = json.NewEncoder(w).Encode(api.JoinResponse{ClusterID: "c1", CAPEM: string(caPEM)})
			default:
				http.NotFound(w, r)
			}
		}))
		srv.TLS = nt.API.Clone()
		srv.TLS.Certificates = []tls.Certificate{*cur}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	calls := map[string]func(context.Context, *client.Client) error{
		"enroll": func(ctx context.Context, c *client.Client) error {
			_, err := c.Enroll(ctx, &api.EnrollRequest{})
			return err
		},
		"join": func(ctx context.Context, c *client.Client) error {
			_, err := c.Join(ctx, &api.JoinRequest{})
			return err
		},
	}
	for _, tc := range []struct {
		name    string
		addr    string
		wantErr error
	}{
		{name: "ok/pinned-ca-answers-with-itself", addr: serve(t, cluster, cluster.CertPEM)},
		{name: "fail/answer-names-another-ca", addr: serve(t, cluster, other.CertPEM), wantErr: client.ErrPinMismatch},
		{name: "fail/answer-without-ca", addr: serve(t, cluster, nil), wantErr: client.ErrPinMismatch},
		{name: "fail/node-of-another-ca", addr: serve(t, other, other.CertPEM), wantErr: client.ErrPinMismatch},
	} {
		for what, call := range calls {
			t.Run(tc.name+"/"+what, func(t *testing.T) {
				c, err := client.New([]string{tc.addr}, client.WithPin(cluster.Pin()))
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseIdleConnections()
				err = call(context.Background(), c)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("%s: %v, want %v", what, err, tc.wantErr)
				}
			})
		}
	}
}
