package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
)

// wantRefusal checks that err is an HTTPError of status saying each of says
// (nil err when status is 0).
func wantRefusal(t *testing.T, err error, status int, says ...string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var he *httpapi.HTTPError
	if !errors.As(err, &he) || he.Status != status {
		t.Fatalf("err = %v, want an HTTP %d refusal", err, status)
	}
	for _, s := range says {
		if !strings.Contains(he.Msg, s) {
			t.Errorf("refusal %q does not say %q", he.Msg, s)
		}
	}
	t.Logf("refused: %s", he.Msg)
}

func TestCheckCloudSSHPort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		port   int
		status int
		says   string
	}{
		{"ok/default-22", 0, 0, ""},
		{"ok/22", 22, 0, ""},
		{"ok/1023", 1023, 0, ""},
		{"fail/1024", 1024, http.StatusForbidden, "ssh_port 1024: a server that enrolls with its cloud identity must run sshd on a privileged port"},
		{"fail/2222", 2222, http.StatusForbidden, "enroll it with a token to use port 2222"},
		{"fail/negative", -1, http.StatusBadRequest, "outside 1-65535"},
		{"fail/too-large", 70000, http.StatusBadRequest, "outside 1-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, checkCloudSSHPort(&api.EnrollRequest{SSHPort: tc.port}), tc.status, tc.says)
		})
	}
}

func TestCheckAWSAddr(t *testing.T) {
	id := &cloudid.AWSIdentity{InstanceID: "i-0123456789abcdef0", PrivateIP: "10.0.3.17"}
	for _, tc := range []struct {
		name      string
		addr, doc string
		status    int
		says      []string
	}{
		{"ok/same", "10.0.3.17", "10.0.3.17", 0, nil},
		{"ok/ipv4-mapped", "::ffff:10.0.3.17", "10.0.3.17", 0, nil},
		{"fail/other-ip", "10.0.3.18", "10.0.3.17", http.StatusForbidden,
			[]string{"addr 10.0.3.18 is not the private IP of AWS instance i-0123456789abcdef0 (10.0.3.17", "set addr in the agent's configuration to 10.0.3.17"}},
		{"fail/public-ip", "203.0.113.9", "10.0.3.17", http.StatusForbidden, []string{"is not the private IP"}},
		{"fail/no-private-ip", "10.0.3.17", "", http.StatusForbidden, []string{"names no privateIp", "enroll it with a token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := *id
			id.PrivateIP = tc.doc
			wantRefusal(t, checkAWSAddr(&api.EnrollRequest{Addr: tc.addr}, &id), tc.status, tc.says...)
		})
	}
}

func TestCheckReenroll(t *testing.T) {
	srv := &raftstore.Server{ID: "srv-0123456789ab", Name: "gcp-1", Addr: "10.0.3.17", AltNames: []string{"db.internal", "gcp-1.example.com"}}
	same := api.EnrollRequest{Name: "gcp-1", Addr: "10.0.3.17", AltNames: []string{"gcp-1.example.com", "db.internal"}}
	with := func(f func(r *api.EnrollRequest)) *api.EnrollRequest {
		r := same
		r.AltNames = append([]string(nil), same.AltNames...)
		f(&r)
		return &r
	}
	for _, tc := range []struct {
		name   string
		req    *api.EnrollRequest
		status int
		says   []string
	}{
		{"ok/same", &same, 0, nil},
		{"ok/name-in-upper-case", with(func(r *api.EnrollRequest) { r.Name = "GCP-1" }), 0, nil},
		{"ok/alt-names-reordered-repeated-with-name", with(func(r *api.EnrollRequest) {
			r.AltNames = []string{"DB.internal", "gcp-1", "gcp-1.example.com", "db.internal"}
		}), 0, nil},
		{"ok/ipv4-mapped-addr", with(func(r *api.EnrollRequest) { r.Addr = "::ffff:10.0.3.17" }), 0, nil},
		{"fail/other-name", with(func(r *api.EnrollRequest) { r.Name = "web-1" }), http.StatusForbidden,
			[]string{"instance 42 is enrolled as server gcp-1 (srv-0123456789ab)", "keeps the server's name (gcp-1)", `asks for "web-1"`, "servers delete gcp-1"}},
		{"fail/other-addr", with(func(r *api.EnrollRequest) { r.Addr = "10.9.9.9" }), http.StatusForbidden,
			[]string{"keeps the server's address (10.0.3.17)", "asks for 10.9.9.9", "set addr"}},
		{"fail/extra-alt-name", with(func(r *api.EnrollRequest) { r.AltNames = append(r.AltNames, "bastion.example.com") }), http.StatusForbidden,
			[]string{"keeps the server's alt names", "bastion.example.com", "set alt_names"}},
		{"fail/no-alt-names", with(func(r *api.EnrollRequest) { r.AltNames = nil }), http.StatusForbidden, []string{"alt names"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, checkReenroll(tc.req, srv, "42"), tc.status, tc.says...)
		})
	}
}

// countingIssuer serves iss on 127.0.0.69 and counts its requests.
type countingIssuer struct {
	mu   sync.Mutex
	hits int
}

func (c *countingIssuer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

func serveCountingIssuer(t *testing.T, iss *cloudidtest.Issuer) *countingIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.69:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingIssuer{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
		iss.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	iss.URL = "http://" + ln.Addr().String()
	return c
}

// The node keeps one GCP verifier: enrollments after the first cost the
// issuer nothing (discovery and keys are fetched once), and forged tokens
// POSTed in a burst cost nothing either.
func TestCloudVerifiersGCPKeptPerNode(t *testing.T) {
	iss, forger := mustCloudIssuer(t), mustCloudIssuer(t)
	hits := serveCountingIssuer(t, iss)
	forger.URL = iss.URL
	cfg := AgentsGCP{Issuer: iss.URL, Audience: "https://bastion.example.com:8443", Projects: map[string]string{"acme-prod": "web"}, MaxAge: time.Hour}
	var cv cloudVerifiers
	inst := cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "4567890123456789012"}
	for i := range 10 {
		signer := iss
		if i%2 == 1 {
			signer = forger
		}
		tok, err := signer.GCPToken(inst, cfg.Audience, time.Now(), time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cv.gcpVerifier(cfg, time.Now).Verify(context.Background(), tok)
		if signer == iss && err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if signer == forger && !errors.Is(err, cloudid.ErrForged) {
			t.Fatalf("forged token %d: err = %v, want ErrForged", i, err)
		}
	}
	if n := hits.count(); n != 2 {
		t.Fatalf("10 enrollments made %d requests to the issuer, want 2 (discovery and keys, once)", n)
	}
	v := cv.gcpVerifier(cfg, time.Now)
	if cv.gcpVerifier(cfg, time.Now) != v {
		t.Fatalf("the same configuration gave another verifier")
	}
	other := cfg
	other.Projects = map[string]string{"acme-prod": "db"}
	if cv.gcpVerifier(other, time.Now) == v {
		t.Fatalf("a changed project mapping kept the old verifier")
	}
}

func mustCloudIssuer(t *testing.T) *cloudidtest.Issuer {
	t.Helper()
	iss, err := cloudidtest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// The AWS bundle is parsed again when the file changes, not at every
// enrollment.
func TestCloudVerifiersAWSBundle(t *testing.T) {
	a, err := cloudidtest.NewAWSSigner("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cloudidtest.NewAWSSigner("eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aws-certs.pem")
	if err := os.WriteFile(path, a.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var cv cloudVerifiers
	first, err := cv.awsCertificates(path)
	if err != nil || len(first) != 1 {
		t.Fatalf("first read: %d certificates, %v", len(first), err)
	}
	again, err := cv.awsCertificates(path)
	if err != nil || &again[0] != &first[0] {
		t.Fatalf("unchanged file parsed again (%v)", err)
	}
	if err := os.WriteFile(path, append(append([]byte(nil), a.CertPEM...), b.CertPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if certs, err := cv.awsCertificates(path); err != nil || len(certs) != 2 || !certs[1].Equal(b.Cert) {
		t.Fatalf("after adding a region: %d certificates, %v", len(certs), err)
	}
	if err := os.WriteFile(path, []byte("not certificates\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cv.awsCertificates(path); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("broken bundle: err = %v", err)
	}
	if _, err := cv.awsCertificates(filepath.Join(t.TempDir(), "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing bundle: err = %v", err)
	}
}

func TestAgentsGCPValidateMaxAge(t *testing.T) {
	cfg := AgentsGCP{Issuer: cloudid.GoogleIssuer, Audience: "https://bastion.example.com:8443", Projects: map[string]string{"acme-prod": "web"}, MaxAge: time.Hour}
	if errs := cfg.validate(); len(errs) != 0 {
		t.Fatalf("valid settings refused: %v", errs)
	}
	cfg.MaxAge = 10 * time.Second
	if errs := cfg.validate(); len(errs) != 1 || errs[0].Error() != "max_age 10s: must be at least 1m" {
		t.Fatalf("max_age 10s: %v", errs)
	}
}
