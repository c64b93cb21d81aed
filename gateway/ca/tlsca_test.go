package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// caNow is the fixed clock of tests that check validity windows.
var caNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T, id string, now func() time.Time) *TLSCA {
	t.Helper()
	c, err := NewTLSCA(id, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issuePEM issues role/id from c on 127.0.0.1 and returns cert and key PEM.
func issuePEM(t *testing.T, c *TLSCA, role, id string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := NewNodeKey()
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

func TestNewTLSCA(t *testing.T) {
	c := newTestCA(t, "cluster-1", func() time.Time { return caNow })
	switch {
	case !c.Cert.IsCA || !c.Cert.MaxPathLenZero:
		t.Fatal("CA certificate is not a CA with path length 0")
	case !strings.Contains(c.Cert.Subject.CommonName, "cluster-1"):
		t.Fatalf("CA subject %q does not name the cluster", c.Cert.Subject.CommonName)
	case !c.Cert.NotBefore.Equal(caNow.Add(-backdate)) || !c.Cert.NotAfter.Equal(caNow.Add(caValidity)):
		t.Fatalf("CA valid %s..%s", c.Cert.NotBefore, c.Cert.NotAfter)
	case !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(c.Pin()):
		t.Fatalf("pin %q", c.Pin())
	case c.Pin() == newTestCA(t, "cluster-1", time.Now).Pin():
		t.Fatal("two CAs share a pin")
	}
	parsed, err := api.ParseCertPEM(c.CertPEM)
	if err != nil || !parsed.Equal(c.Cert) {
		t.Fatalf("CertPEM does not hold the CA certificate (%v)", err)
	}
}

func TestIssue(t *testing.T) {
	c := newTestCA(t, "cluster-1", func() time.Time { return caNow })
	pool := x509.NewCertPool()
	pool.AddCert(c.Cert)
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		role, id string
		validity time.Duration
		ok       bool
	}{
		{name: "ok/node", role: api.RoleNode, id: "node-1", ok: true},
		{name: "ok/agent", role: api.RoleAgent, id: "srv-42", validity: time.Hour, ok: true},
		{name: "fail/unknown-role", role: "admin", id: "x"},
		{name: "fail/empty-id", role: api.RoleNode, id: ""},
		{name: "fail/id-with-colon", role: api.RoleNode, id: "node:1"},
		{name: "fail/id-with-slash", role: api.RoleNode, id: "a/b"},
		{name: "fail/id-with-space", role: api.RoleAgent, id: "a b"},
		{name: "fail/id-with-newline", role: api.RoleAgent, id: "a\nb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, err := c.Issue(tc.role, tc.id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, tc.validity)
			if !tc.ok {
				if err == nil {
					t.Fatal("Issue succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := api.ParseCertPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if role, id, ok := api.Identity(cert); !ok || role != tc.role || id != tc.id {
				t.Fatalf("Identity = %q, %q, %v; want %q, %q", role, id, ok, tc.role, tc.id)
			}
			validity := tc.validity
			if validity == 0 {
				validity = nodeValidity
			}
			if !cert.NotBefore.Equal(caNow.Add(-backdate)) || !cert.NotAfter.Equal(caNow.Add(validity)) {
				t.Fatalf("valid %s..%s, want %s..%s", cert.NotBefore, cert.NotAfter, caNow.Add(-backdate), caNow.Add(validity))
			}
			if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(cert.DNSNames) != 1 {
				t.Fatalf("SANs %v %v", cert.IPAddresses, cert.DNSNames)
			}
			// Nodes serve and authenticate; agents only authenticate.
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: caNow, KeyUsages: []x509.ExtKeyUsage{usage}})
				want := tc.role == api.RoleNode || usage == x509.ExtKeyUsageClientAuth
				if want && err != nil {
					t.Fatalf("not valid for usage %v: %v", usage, err)
				}
				if !want && err == nil {
					t.Fatalf("a %s certificate is valid for usage %v", tc.role, usage)
				}
			}
		})
	}
}

func TestIdentityWithoutRampartURI(t *testing.T) {
	c := newTestCA(t, "cluster-1", time.Now)
	certPEM, _ := issuePEM(t, c, api.RoleNode, "node-1")
	cert, err := api.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert.URIs[0].Opaque = "other:node:node-1"
	if _, _, ok := api.Identity(cert); ok {
		t.Fatal("Identity accepted a URI outside urn:rampart")
	}
	if _, _, ok := api.Identity(c.Cert); ok {
		t.Fatal("the CA certificate has an identity")
	}
}

func TestNewNodeTLS(t *testing.T) {
	cluster, other := newTestCA(t, "cluster-1", time.Now), newTestCA(t, "cluster-2", time.Now)
	nodeCert, nodeKey := issuePEM(t, cluster, api.RoleNode, "node-1")
	foreignCert, foreignKey := issuePEM(t, other, api.RoleNode, "node-1")
	agentCert, agentKey := issuePEM(t, cluster, api.RoleAgent, "srv-1")
	_, otherKey := issuePEM(t, cluster, api.RoleNode, "node-2")
	cases := []struct {
		name        string
		ca          []byte
		cert, key   []byte
		wantErrText string
	}{
		{name: "ok/cert-from-cluster-ca", ca: cluster.CertPEM, cert: nodeCert, key: nodeKey},
		{name: "fail/cert-from-another-ca", ca: cluster.CertPEM, cert: foreignCert, key: foreignKey, wantErrText: "not signed by the cluster CA"},
		{name: "fail/agent-cert", ca: cluster.CertPEM, cert: agentCert, key: agentKey, wantErrText: "does not name a rampart node"},
		{name: "fail/key-of-another-cert", ca: cluster.CertPEM, cert: nodeCert, key: otherKey, wantErrText: "node certificate"},
		{name: "fail/ca-not-pem", ca: []byte("not pem"), cert: nodeCert, key: nodeKey, wantErrText: "not valid PEM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nt, err := NewNodeTLS(tc.ca, tc.cert, tc.key)
			if tc.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("NewNodeTLS = %v, want an error saying %q", err, tc.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case nt.RaftServer.ClientAuth != tls.RequireAndVerifyClientCert || nt.RaftServer.ClientCAs == nil:
				t.Fatal("raft server does not require cluster client certificates")
			case nt.RaftClient.RootCAs == nil || nt.RaftClient.InsecureSkipVerify:
				t.Fatal("raft client does not verify the server against the cluster CA")
			case nt.API.ClientAuth != tls.VerifyClientCertIfGiven:
				t.Fatalf("API client auth %v", nt.API.ClientAuth)
			case nt.API.GetCertificate == nil || nt.RaftClient.GetClientCertificate == nil:
				t.Fatal("the node's configurations do not present its current certificate")
			}
			if c, err := nt.API.GetCertificate(nil); err != nil || len(c.Certificate) != 2 {
				t.Fatal("the node does not send its chain (leaf and CA)")
			}
		})
	}
}

func TestLoadTLSCA(t *testing.T) {
	orig := newTestCA(t, "cluster-1", time.Now)
	kek, other := testKEK(t, 3), testKEK(t, 4)
	sealed, err := orig.SealKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		kek  *KEK
		blob []byte
		want error
	}{
		{name: "ok/same-kek", kek: kek, blob: sealed},
		{name: "fail/wrong-kek", kek: other, blob: sealed, want: ErrWrongKEK},
		{name: "fail/tampered", kek: kek, blob: append(sealed[:len(sealed)-1:len(sealed)-1], sealed[len(sealed)-1]^1), want: ErrSealCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loaded, err := LoadTLSCA(orig.CertPEM, tc.blob, tc.kek, time.Now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("LoadTLSCA = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			// The loaded CA signs certificates the original CA verifies.
			certPEM, keyPEM := issuePEM(t, loaded, api.RoleNode, "node-9")
			if _, err := NewNodeTLS(orig.CertPEM, certPEM, keyPEM); err != nil {
				t.Fatalf("certificate from the loaded CA: %v", err)
			}
		})
	}
}
