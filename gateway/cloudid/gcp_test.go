package cloudid_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

// serveIssuer serves iss over real HTTP on a loopback address and sets its
// URL. Discovery answers 503 while down is set.
func serveIssuer(t *testing.T, iss *cloudidtest.Issuer, down *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.60:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down != nil && down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	iss.URL = "http://" + ln.Addr().String()
}

func mustIssuer(t *testing.T) *cloudidtest.Issuer {
	t.Helper()
	iss, err := cloudidtest.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestGCPVerify(t *testing.T) {
	const audience = "https://bastion.example.com:8443"
	now := time.Now()
	iss, forger := mustIssuer(t), mustIssuer(t)
	serveIssuer(t, iss, nil)
	forger.URL = iss.URL // claims the real issuer, signs with its own key
	other := mustIssuer(t)
	serveIssuer(t, other, nil)
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: audience, Projects: map[string]string{"acme-prod": "web"}}
	inst := cloudidtest.GCPInstance{ProjectID: "acme-prod", ProjectNumber: 123456789012, InstanceID: "4567890123456789012",
		InstanceName: "web-1", Zone: "projects/123456789012/zones/europe-west1-b"}
	token := func(i *cloudidtest.Issuer, inst cloudidtest.GCPInstance, aud string, iat, exp time.Time, full bool) string {
		t.Helper()
		tok, err := i.GCPToken(inst, aud, iat, exp, full)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	unmapped := inst
	unmapped.ProjectID = "acme-dev"
	badID := inst
	badID.InstanceID = "web-1; rm -rf"
	for _, tc := range []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"ok/full", token(iss, inst, audience, now, time.Time{}, true), nil},
		{"fail/expired", token(iss, inst, audience, now.Add(-2*time.Hour), now.Add(-time.Hour), true), cloudid.ErrExpired},
		{"fail/wrong-audience", token(iss, inst, "https://other.example.com", now, time.Time{}, true), cloudid.ErrAudience},
		{"fail/unmapped-project", token(iss, unmapped, audience, now, time.Time{}, true), cloudid.ErrUnmapped},
		{"fail/forged-signature", token(forger, inst, audience, now, time.Time{}, true), cloudid.ErrForged},
		{"fail/other-issuer", token(other, inst, audience, now, time.Time{}, true), cloudid.ErrForged},
		{"fail/standard-format", token(iss, inst, audience, now, time.Time{}, false), cloudid.ErrMalformed},
		{"fail/bad-instance-id", token(iss, badID, audience, now, time.Time{}, true), cloudid.ErrMalformed},
		{"fail/garbage", "not.a.jwt", cloudid.ErrForged},
		{"fail/empty", "", cloudid.ErrMalformed},
		{"fail/too-large", strings.Repeat("a", 20<<10), cloudid.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.ProjectID != "acme-prod" || id.InstanceID != inst.InstanceID || id.Project != "web" ||
					id.ProjectNumber != "123456789012" || id.InstanceName != "web-1" || id.Zone != inst.Zone {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			var ce *cloudid.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *cloudid.Error of kind %v", err, tc.want)
			}
			if ce.Reason == "" || strings.Contains(ce.Reason, "oidc:") || strings.Contains(ce.Reason, tc.token) && tc.token != "" {
				t.Errorf("reason %q is empty or carries internals", ce.Reason)
			}
			t.Logf("refused: %s", ce.Reason)
		})
	}
}

// A node that cannot reach the issuer refuses as unavailable, and tries
// discovery again on the next call rather than keeping the failure.
func TestGCPVerifyIssuerDown(t *testing.T) {
	iss := mustIssuer(t)
	var down atomic.Bool
	down.Store(true)
	serveIssuer(t, iss, &down)
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: "aud", Projects: map[string]string{"acme-prod": "web"}}
	tok, err := iss.GCPToken(cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "123"}, "aud", time.Now(), time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, cloudid.ErrUnavailable) {
		t.Fatalf("issuer down: err = %v, want ErrUnavailable", err)
	}
	down.Store(false)
	if id, err := v.Verify(context.Background(), tok); err != nil || id.InstanceID != "123" {
		t.Fatalf("issuer back: %+v, %v", id, err)
	}
}

func TestGCPVerifyNoAudience(t *testing.T) {
	v := &cloudid.GCPVerifier{Issuer: "http://127.0.0.60:1", Projects: map[string]string{"acme-prod": "web"}}
	if _, err := v.Verify(context.Background(), "a.b.c"); !errors.Is(err, cloudid.ErrAudience) {
		t.Fatalf("err = %v, want ErrAudience", err)
	}
}
