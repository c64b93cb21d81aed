package agent

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

// serve runs h over real HTTP on a loopback address of this package's tests
// and returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.60:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestFetchAWSIdentity(t *testing.T) {
	signer, err := cloudidtest.NewAWSSigner("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	doc := cloudidtest.AWSDocument{AccountID: "123456789012", InstanceID: cloudidtest.RandomInstanceID(), Region: "us-east-1",
		PendingTime: time.Now()}.Bytes()
	// IMDS ends the document without a newline; keep a trailing one here
	// to prove the agent sends the bytes untouched.
	doc = append(doc, '\n')
	sig, err := signer.Signature(doc)
	if err != nil {
		t.Fatal(err)
	}
	p7, err := signer.RSA2048(doc)
	if err != nil {
		t.Fatal(err)
	}
	imds := &cloudidtest.IMDS{}
	imds.SetIdentity(doc, sig+"\n", p7)
	base := serve(t, imds)

	t.Run("ok/signature", func(t *testing.T) {
		var cred credential
		if err := fetchAWSIdentity(context.Background(), metadataClient(), base+"/", AWSFormSignature, &cred); err != nil {
			t.Fatal(err)
		}
		if cred.awsDocument != string(doc) || cred.awsSignature != sig || cred.awsPKCS7 != "" {
			t.Fatalf("credential = %+v", cred)
		}
	})
	t.Run("ok/rsa2048", func(t *testing.T) {
		var cred credential
		if err := fetchAWSIdentity(context.Background(), metadataClient(), base, AWSFormRSA2048, &cred); err != nil {
			t.Fatal(err)
		}
		if cred.awsPKCS7 != p7 || cred.awsDocument != "" {
			t.Fatalf("credential = %+v", cred)
		}
	})
	t.Run("fail/not-served", func(t *testing.T) {
		empty := serve(t, &cloudidtest.IMDS{})
		var cred credential
		err := fetchAWSIdentity(context.Background(), metadataClient(), empty, AWSFormSignature, &cred)
		if err == nil || !strings.Contains(err.Error(), "instance-identity/document: HTTP 404") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fail/no-imds", func(t *testing.T) {
		var cred credential
		err := fetchAWSIdentity(context.Background(), metadataClient(), "http://127.0.0.60:1", AWSFormSignature, &cred)
		if err == nil || !strings.Contains(err.Error(), "is this an EC2 instance") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFetchGCPToken(t *testing.T) {
	md := &cloudidtest.GCPMetadata{}
	var format string
	md.SetToken(func(aud, f string) (string, error) { format = f; return "header.payload.signature", nil })
	base := serve(t, md)
	tok, err := fetchGCPToken(context.Background(), metadataClient(), base, "https://bastion.example.com:8443")
	if err != nil {
		t.Fatal(err)
	}
	if tok != "header.payload.signature" || format != "full" {
		t.Fatalf("token = %q, format asked = %q", tok, format)
	}
	if got := md.Audiences(); len(got) != 1 || got[0] != "https://bastion.example.com:8443" {
		t.Fatalf("audiences asked: %q", got)
	}

	// Something that is not the metadata server (no Metadata-Flavor in its
	// answer) is not trusted.
	impostor := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("a.b.c")) }))
	if _, err := fetchGCPToken(context.Background(), metadataClient(), impostor, "aud"); err == nil || !strings.Contains(err.Error(), "not a metadata server") {
		t.Fatalf("impostor: err = %v", err)
	}
}

func TestValidateAutoEnroll(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings, one per problem
	}{
		{"ok/aws", Config{AutoEnroll: "aws", Cluster: []string{"10.0.0.1:8443"}, CAPin: pin, AWSMetadataURL: "http://169.254.169.254", AWSIdentityForm: "signature"}, nil},
		{"ok/gcp", Config{AutoEnroll: "gcp", Cluster: []string{"10.0.0.1:8443"}, CAPin: pin, GCPMetadataURL: "http://metadata.google.internal", GCPAudience: "https://bastion:8443"}, nil},
		{"fail/aws-everything", Config{AutoEnroll: "aws", CAPin: "sha256:zz", AWSMetadataURL: "169.254.169.254", AWSIdentityForm: "pkcs7"},
			[]string{"set cluster", "ca_pin", "aws_metadata_url", "aws_identity_form"}},
		{"fail/unprivileged-ssh-port", Config{AutoEnroll: "gcp", Cluster: []string{"10.0.0.1:8443"}, CAPin: pin, SSHPort: 2222,
			GCPMetadataURL: "http://metadata.google.internal", GCPAudience: "https://bastion:8443"}, []string{"ssh_port 2222: auto_enroll gcp needs sshd on a privileged port"}},
		{"fail/gcp-no-audience", Config{AutoEnroll: "gcp", Cluster: []string{"10.0.0.1:8443"}, CAPin: pin, GCPMetadataURL: "http://metadata.google.internal"},
			[]string{"gcp_audience"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.cfg.validateAutoEnroll()
			if len(errs) != len(tc.want) {
				t.Fatalf("problems = %q, want %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i], w) {
					t.Errorf("problem %d = %q, want it to mention %q", i, errs[i], w)
				}
			}
		})
	}
}
