package cloudid_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

func mustSigner(t *testing.T, name string) *cloudidtest.AWSSigner {
	t.Helper()
	s, err := cloudidtest.NewAWSSigner(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sigOf is s's /signature for doc.
func sigOf(t *testing.T, s *cloudidtest.AWSSigner, doc []byte) string {
	t.Helper()
	sig, err := s.Signature(doc)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// p7Of is s's /rsa2048 for doc.
func p7Of(t *testing.T, s *cloudidtest.AWSSigner, doc []byte) string {
	t.Helper()
	p7, err := s.RSA2048(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p7
}

func TestParseAWSCertificates(t *testing.T) {
	a, b := mustSigner(t, "us-east-1"), mustSigner(t, "eu-west-1")
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   int
		errHas string
	}{
		{"ok/two", append(append([]byte("# us-east-1\n"), a.CertPEM...), b.CertPEM...), 2, ""},
		{"fail/empty", []byte("\n"), 0, "no PEM certificate"},
		{"fail/key-block", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), 0, "not a CERTIFICATE"},
		{"fail/garbage-certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0, "certificate 1"},
		{"fail/trailing", append(append([]byte(nil), a.CertPEM...), "MIIB garbage"...), 0, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := cloudid.ParseAWSCertificates(tc.bundle)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one saying %q", err, tc.errHas)
				}
				return
			}
			if err != nil || len(certs) != tc.want {
				t.Fatalf("got %d certificates, %v; want %d", len(certs), err, tc.want)
			}
		})
	}
}

// errAcceptedAtMaxAge marks the case of a document exactly MaxAge old.
var errAcceptedAtMaxAge = errors.New("accepted at max age")

func TestAWSVerify(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	region, other, attacker := mustSigner(t, "us-east-1"), mustSigner(t, "eu-west-1"), mustSigner(t, "attacker")
	v := &cloudid.AWSVerifier{
		Certificates: []*x509.Certificate{other.Cert, region.Cert},
		Accounts:     map[string]string{"123456789012": "web"},
		MaxAge:       time.Hour,
		Now:          func() time.Time { return now },
	}
	good := cloudidtest.AWSDocument{AccountID: "123456789012", InstanceID: "i-0123456789abcdef0", Region: "us-east-1",
		AvailabilityZone: "us-east-1a", PrivateIP: "10.0.3.17", PendingTime: now.Add(-10 * time.Minute)}
	doc := good.Bytes()
	withDoc := func(f func(d *cloudidtest.AWSDocument)) []byte {
		d := good
		f(&d)
		return d.Bytes()
	}
	signed := func(doc []byte) cloudid.AWSEvidence {
		return cloudid.AWSEvidence{Document: doc, Signature: sigOf(t, region, doc)}
	}
	for _, tc := range []struct {
		name string
		ev   cloudid.AWSEvidence
		want error // nil: accepted
	}{
		{"ok/signature", signed(doc), nil},
		{"ok/signature-other-region", cloudid.AWSEvidence{Document: doc, Signature: sigOf(t, other, doc)}, nil},
		{"ok/rsa2048", cloudid.AWSEvidence{PKCS7: p7Of(t, region, doc)}, nil},
		{"ok/rsa2048-pem-with-document", cloudid.AWSEvidence{Document: doc,
			PKCS7: "-----BEGIN PKCS7-----\n" + p7Of(t, region, doc) + "\n-----END PKCS7-----\n"}, nil},
		{"fail/forged-document", cloudid.AWSEvidence{Document: bytes.Replace(doc, []byte("123456789012"), []byte("210987654321"), 1),
			Signature: signed(doc).Signature}, cloudid.ErrForged},
		{"fail/forged-signature", cloudid.AWSEvidence{Document: doc, Signature: sigOf(t, attacker, doc)}, cloudid.ErrForged},
		{"fail/signature-of-other-document", cloudid.AWSEvidence{Document: doc,
			Signature: signed(withDoc(func(d *cloudidtest.AWSDocument) { d.InstanceID = "i-0aaaaaaaaaaaaaaaa" })).Signature}, cloudid.ErrForged},
		// The attacker's certificate travels inside the message: it must not
		// be trusted.
		{"fail/rsa2048-forged", cloudid.AWSEvidence{PKCS7: p7Of(t, attacker, doc)}, cloudid.ErrForged},
		{"fail/rsa2048-other-document", cloudid.AWSEvidence{Document: withDoc(func(d *cloudidtest.AWSDocument) { d.AccountID = "210987654321" }),
			PKCS7: p7Of(t, region, doc)}, cloudid.ErrForged},
		{"fail/rsa2048-garbage", cloudid.AWSEvidence{PKCS7: "MIIBAAAA"}, cloudid.ErrMalformed},
		{"fail/signature-not-base64", cloudid.AWSEvidence{Document: doc, Signature: "not base64!"}, cloudid.ErrMalformed},
		{"fail/no-evidence", cloudid.AWSEvidence{Document: doc}, cloudid.ErrMalformed},
		{"fail/too-large", cloudid.AWSEvidence{Document: bytes.Repeat([]byte(" "), 20<<10), Signature: "AAAA"}, cloudid.ErrMalformed},
		{"fail/not-json", signed([]byte("accountId=123456789012")), cloudid.ErrMalformed},
		{"fail/bad-account", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.AccountID = "12345" })), cloudid.ErrMalformed},
		{"fail/bad-instance", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.InstanceID = "../../etc" })), cloudid.ErrMalformed},
		{"fail/bad-private-ip", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.PrivateIP = "10.0.3.999" })), cloudid.ErrMalformed},
		{"fail/no-pending-time", signed(bytes.Replace(doc, []byte(`"pendingTime"`), []byte(`"pendingTme"`), 1)), cloudid.ErrMalformed},
		{"fail/unmapped-account", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.AccountID = "210987654321" })), cloudid.ErrUnmapped},
		{"ok/pending-at-max-age", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.PendingTime = now.Add(-time.Hour) })), errAcceptedAtMaxAge},
		{"fail/stale", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.PendingTime = now.Add(-time.Hour - time.Second) })), cloudid.ErrStale},
		{"fail/future", signed(withDoc(func(d *cloudidtest.AWSDocument) { d.PendingTime = now.Add(time.Hour) })), cloudid.ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.ev)
			if tc.want == errAcceptedAtMaxAge {
				if err != nil || !id.PendingTime.Equal(now.Add(-time.Hour)) {
					t.Fatalf("a document exactly max_age old: %+v, %v", id, err)
				}
				return
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.AccountID != "123456789012" || id.InstanceID != "i-0123456789abcdef0" || id.Region != "us-east-1" ||
					id.Project != "web" || !id.PendingTime.Equal(good.PendingTime) || id.PrivateIP != "10.0.3.17" {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			var ce *cloudid.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *cloudid.Error of kind %v", err, tc.want)
			}
			if ce.Reason == "" || strings.Contains(ce.Reason, "crypto/") || strings.Contains(ce.Reason, "pkcs7:") {
				t.Errorf("reason %q is empty or carries internals", ce.Reason)
			}
			t.Logf("refused: %s", ce.Reason)
		})
	}
}

func TestAWSVerifyNoMaxAge(t *testing.T) {
	region := mustSigner(t, "us-east-1")
	doc := cloudidtest.AWSDocument{AccountID: "123456789012", InstanceID: cloudidtest.RandomInstanceID(), Region: "us-east-1",
		PendingTime: time.Now().Add(-400 * 24 * time.Hour)}.Bytes()
	v := &cloudid.AWSVerifier{Certificates: []*x509.Certificate{region.Cert}, Accounts: map[string]string{"123456789012": "web"}}
	if _, err := v.Verify(cloudid.AWSEvidence{Document: doc, Signature: sigOf(t, region, doc)}); err != nil {
		t.Fatalf("MaxAge 0 should not bound the age: %v", err)
	}
}

func TestValidIDs(t *testing.T) {
	for s, want := range map[string]bool{"123456789012": true, "12345678901": false, "1234567890123": false, "12345678901a": false} {
		if got := cloudid.ValidAWSAccount(s); got != want {
			t.Errorf("ValidAWSAccount(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{"my-project-123": true, "example.com:my-project": true, "My-Project": false, "ab": false,
		"1project": false, "project-": false} {
		if got := cloudid.ValidGCPProject(s); got != want {
			t.Errorf("ValidGCPProject(%q) = %v", s, got)
		}
	}
}
