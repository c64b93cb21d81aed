package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"regexp"
	"testing"
	"time"
)

// selfSigned returns a certificate naming uris, and its key.
func selfSigned(t *testing.T, uris ...*url.URL) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), URIs: uris}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// What the CA writes (IdentityURI) is what a checker reads (Identity), and
// nothing else reads as an identity.
func TestIdentity(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tc := range []struct {
		name           string
		uris           []*url.URL
		wantRole, want string
		ok             bool
	}{
		{name: "ok/node", uris: []*url.URL{IdentityURI(RoleNode, "node-1")}, wantRole: RoleNode, want: "node-1", ok: true},
		{name: "ok/agent", uris: []*url.URL{IdentityURI(RoleAgent, "srv-42")}, wantRole: RoleAgent, want: "srv-42", ok: true},
		{name: "ok/written-form", uris: []*url.URL{mustURL("urn:rampart:node:n1")}, wantRole: RoleNode, want: "n1", ok: true},
		{name: "ok/after-another-uri", uris: []*url.URL{mustURL("spiffe://x/y"), IdentityURI(RoleNode, "n2")}, wantRole: RoleNode, want: "n2", ok: true},
		{name: "fail/none"},
		{name: "fail/other-namespace", uris: []*url.URL{mustURL("urn:other:node:n1")}},
		{name: "fail/not-a-urn", uris: []*url.URL{mustURL("https://rampart/node/n1")}},
		{name: "fail/empty-role", uris: []*url.URL{IdentityURI("", "n1")}},
		{name: "fail/empty-id", uris: []*url.URL{IdentityURI(RoleNode, "")}},
		{name: "fail/no-id", uris: []*url.URL{mustURL("urn:rampart:node")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, _, _ := selfSigned(t, tc.uris...)
			role, id, ok := Identity(cert)
			if ok != tc.ok || role != tc.wantRole || id != tc.want {
				t.Fatalf("Identity = %q, %q, %v; want %q, %q, %v", role, id, ok, tc.wantRole, tc.want, tc.ok)
			}
		})
	}
	if got := IdentityURI(RoleNode, "n1").String(); got != "urn:rampart:node:n1" {
		t.Fatalf("IdentityURI = %q", got)
	}
}

// The pin is the form tokens carry, of the key alone: a certificate
// re-issued for the same key has the same pin.
func TestPin(t *testing.T) {
	a, key, _ := selfSigned(t)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(Pin(a)) {
		t.Fatalf("pin %q", Pin(a))
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	same, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := selfSigned(t)
	if Pin(same) != Pin(a) || Pin(other) == Pin(a) {
		t.Fatalf("pins: a %s, same key %s, other key %s", Pin(a), Pin(same), Pin(other))
	}
}

func TestPEM(t *testing.T) {
	cert, key, certPEM := selfSigned(t)
	got, err := ParseCertPEM(certPEM)
	if err != nil || !got.Equal(cert) {
		t.Fatalf("ParseCertPEM: %v", err)
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM %q", keyPEM)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil || !key.Equal(parsed) {
		t.Fatalf("key does not round-trip: %v", err)
	}
	if signer, err := ParseKeyPEM(keyPEM); err != nil || !key.Equal(signer) {
		t.Fatalf("ParseKeyPEM: %v", err)
	}
	for name, data := range map[string][]byte{"empty": nil, "key-not-cert": keyPEM, "not-pem": []byte("hello")} {
		if _, err := ParseCertPEM(data); err == nil {
			t.Errorf("%s: ParseCertPEM accepted it", name)
		}
	}
	for name, data := range map[string][]byte{"empty": nil, "cert-not-key": certPEM, "not-pem": []byte("hello")} {
		if _, err := ParseKeyPEM(data); err == nil {
			t.Errorf("%s: ParseKeyPEM accepted it", name)
		}
	}
}
