package ca

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestHostPrincipals(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want string // principals joined by " "; "" when refused
	}{
		{"ok/canonical-alt-address", []string{"web-1", "web-1.prod.example.com", "10.0.0.5"}, "web-1 web-1.prod.example.com 10.0.0.5"},
		{"ok/duplicates-dropped", []string{"web-1", "web-1", "10.0.0.5", "10.0.0.5"}, "web-1 10.0.0.5"},
		{"ok/empty-names-skipped", []string{"web-1", "", "  ", "10.0.0.5"}, "web-1 10.0.0.5"},
		{"ok/address-with-port", []string{"web-1", "10.0.0.5:2222"}, "web-1 10.0.0.5"},
		{"ok/ipv6-with-port", []string{"[2001:db8::5]:22"}, "2001:db8::5"},
		{"ok/ipv6-bracketed", []string{"[2001:db8::5]"}, "2001:db8::5"},
		{"ok/ipv6-non-canonical-kept-and-canonical-added", []string{"2001:DB8:0::5"}, "2001:DB8:0::5 2001:db8::5"},
		{"ok/ipv4-mapped", []string{"::ffff:10.0.0.5"}, "::ffff:10.0.0.5 10.0.0.5"},
		{"ok/upper-case-adds-lower", []string{"Web-1"}, "Web-1 web-1"},
		{"ok/trailing-dot", []string{"web-1.example.com."}, "web-1.example.com."},
		{"ok/underscore", []string{"web_1"}, "web_1"},
		{"fail/none", nil, ""},
		{"fail/only-empty", []string{"", " "}, ""},
		{"fail/wildcard", []string{"web-1", "*"}, ""},
		{"fail/wildcard-suffix", []string{"*.example.com"}, ""},
		{"fail/question-mark", []string{"web-?"}, ""},
		{"fail/negation", []string{"!web-1"}, ""},
		{"fail/comma-list", []string{"web-1,db-1"}, ""},
		{"fail/space-inside", []string{"web 1"}, ""},
		{"fail/newline", []string{"web-1\nevil"}, ""},
		{"fail/empty-label", []string{"web..example.com"}, ""},
		{"fail/leading-dash", []string{"-web"}, ""},
		{"fail/too-long", []string{strings.Repeat("a.", 127) + "ab"}, ""},
		{"fail/zone", []string{"fe80::1%eth0"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HostPrincipals(tc.in...)
			if tc.want == "" {
				if !errors.Is(err, ErrHostName) {
					t.Fatalf("HostPrincipals(%q) = %q, %v; want ErrHostName", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("HostPrincipals(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSignHostForNames(t *testing.T) {
	c, other := testSSHCA(t, SSHAlgED25519), testSSHCA(t, SSHAlgECDSAP256)
	hostKey := testUserKey(t)
	cert, err := c.SignHostForNames(hostKey, "rampart target web-1", []string{"web-1", "", "web-1.prod", "127.0.0.5:22", "web-1"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cert.ValidPrincipals, " "); got != "web-1 web-1.prod 127.0.0.5" {
		t.Fatalf("principals = %q", got)
	}
	cases := []struct {
		name   string
		caKey  ssh.PublicKey
		addr   string
		at     time.Time
		wantOK bool
	}{
		{name: "ok/canonical", caKey: c.Signer.PublicKey(), addr: "web-1:22", at: testNow, wantOK: true},
		{name: "ok/alt-name", caKey: c.Signer.PublicKey(), addr: "web-1.prod:22", at: testNow, wantOK: true},
		{name: "ok/access-address", caKey: c.Signer.PublicKey(), addr: "127.0.0.5:22", at: testNow, wantOK: true},
		{name: "fail/other-name", caKey: c.Signer.PublicKey(), addr: "db-1:22", at: testNow},
		{name: "fail/other-ca", caKey: other.Signer.PublicKey(), addr: "web-1:22", at: testNow},
		{name: "fail/expired", caKey: c.Signer.PublicKey(), addr: "web-1:22", at: testNow.Add(time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checker := &ssh.CertChecker{
				IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return string(auth.Marshal()) == string(tc.caKey.Marshal()) },
				Clock:           func() time.Time { return tc.at },
			}
			err := checker.CheckHostKey(tc.addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 5), Port: 22}, cert)
			if (err == nil) != tc.wantOK {
				t.Fatalf("CheckHostKey(%s) = %v, want ok=%v", tc.addr, err, tc.wantOK)
			}
		})
	}

	refusals := []struct {
		name     string
		key      ssh.PublicKey
		keyID    string
		names    []string
		validity time.Duration
	}{
		{"fail/no-key", nil, "k", []string{"web-1"}, time.Hour},
		{"fail/no-key-id", hostKey, "", []string{"web-1"}, time.Hour},
		{"fail/key-id-newline", hostKey, "k\nx", []string{"web-1"}, time.Hour},
		{"fail/no-names", hostKey, "k", []string{"", ""}, time.Hour},
		{"fail/wildcard", hostKey, "k", []string{"web-1", "*"}, time.Hour},
		{"fail/no-validity", hostKey, "k", []string{"web-1"}, 0},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			if cert, err := c.SignHostForNames(tc.key, tc.keyID, tc.names, tc.validity, testNow); err == nil {
				t.Fatalf("signed %q", cert.ValidPrincipals)
			}
		})
	}
}

// TestIssueHost: principals given as such are kept as given (the node's own
// names), names are turned into principals, and the pipeline refuses what it
// cannot certify at the step that refuses it.
func TestIssueHost(t *testing.T) {
	c := testSSHCA(t, SSHAlgED25519)
	hostKey := testUserKey(t)
	cert, err := c.IssueHost(HostCertRequest{HostKey: hostKey, KeyID: "rampart node n1", Principals: []string{"Bastion", "127.0.0.9"}, Validity: time.Hour}, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cert.ValidPrincipals, " "); got != "Bastion 127.0.0.9" || cert.KeyId != "rampart node n1" {
		t.Fatalf("principals %q key id %q", got, cert.KeyId)
	}
	if cert.ValidAfter != uint64(testNow.Add(-time.Minute).Unix()) || cert.ValidBefore != uint64(testNow.Add(time.Hour).Unix()) {
		t.Fatalf("valid %d..%d", cert.ValidAfter, cert.ValidBefore)
	}
	for _, tc := range []struct {
		name string
		req  HostCertRequest
		step string
		want error
	}{
		{"fail/certificate-as-host-key", HostCertRequest{HostKey: cert, KeyID: "k", Names: []string{"web-1"}, Validity: time.Hour}, "policy/subject-key", ErrCertRequest},
		{"fail/no-principals", HostCertRequest{HostKey: hostKey, KeyID: "k", Validity: time.Hour}, "policy/principals", ErrHostName},
		{"fail/negative-validity", HostCertRequest{HostKey: hostKey, KeyID: "k", Names: []string{"web-1"}, Validity: -time.Hour}, "policy/validity", ErrCertTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.IssueHost(tc.req, testNow, nil)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "("+tc.step+")") {
				t.Fatalf("IssueHost = %v, want %v at %s", err, tc.want, tc.step)
			}
		})
	}
}
