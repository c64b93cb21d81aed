package cloudid_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

// serveIssuer serves iss over real HTTP on a loopback address and sets its
// URL. Discovery and keys answer 503 while down is set.
func serveIssuer(t *testing.T, iss *cloudidtest.Issuer, down *atomic.Bool) {
	t.Helper()
	serveIssuerCounting(t, iss, down, nil)
}

// issuerHits counts the requests an issuer served, by path.
type issuerHits struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *issuerHits) add(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[path]++
}

// get returns the discovery and key set requests served so far.
func (h *issuerHits) get() (discovery, keys int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n["/.well-known/openid-configuration"], h.n["/jwks"]
}

// serveIssuerCounting is serveIssuer counting every request in hits.
func serveIssuerCounting(t *testing.T, iss *cloudidtest.Issuer, down *atomic.Bool, hits *issuerHits) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.60:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.add(r.URL.Path)
		}
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
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: audience, Projects: map[string]string{"acme-prod": "web"}, MaxAge: time.Hour}
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
	old, atMaxAge, future := inst, inst, inst
	old.CreatedAt = now.Add(-time.Hour - time.Minute)
	atMaxAge.CreatedAt = now.Add(-time.Hour + time.Minute)
	future.CreatedAt = now.Add(time.Hour)
	// A Google-signed token naming an instance but not its creation.
	noCreation, err := iss.Sign(map[string]any{"iss": iss.URL, "aud": audience, "sub": "1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"google": map[string]any{"compute_engine": map[string]any{"instance_id": inst.InstanceID, "project_id": inst.ProjectID}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"ok/full", token(iss, inst, audience, now, time.Time{}, true), nil},
		{"ok/created-within-max-age", token(iss, atMaxAge, audience, now, time.Time{}, true), nil},
		{"fail/created-before-max-age", token(iss, old, audience, now, time.Time{}, true), cloudid.ErrStale},
		{"fail/created-in-future", token(iss, future, audience, now, time.Time{}, true), cloudid.ErrStale},
		{"fail/no-creation-timestamp", noCreation, cloudid.ErrMalformed},
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
					id.ProjectNumber != "123456789012" || id.InstanceName != "web-1" || id.Zone != inst.Zone ||
					now.Sub(id.CreatedAt) < time.Minute-time.Second || now.Sub(id.CreatedAt) > time.Hour {
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

// fakeClock is a settable clock for verifiers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A node that cannot reach the issuer refuses as unavailable, does not ask
// it again for every request, and tries discovery again once the retry
// delay has passed rather than keeping the failure.
func TestGCPVerifyIssuerDown(t *testing.T) {
	iss := mustIssuer(t)
	var down atomic.Bool
	down.Store(true)
	var hits issuerHits
	serveIssuerCounting(t, iss, &down, &hits)
	clock := &fakeClock{t: time.Now()}
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: "aud", Projects: map[string]string{"acme-prod": "web"}, Now: clock.now}
	tok, err := iss.GCPToken(cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "123"}, "aud", clock.now(), time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, cloudid.ErrUnavailable) {
			t.Fatalf("issuer down: err = %v, want ErrUnavailable", err)
		}
	}
	if d, _ := hits.get(); d != 1 {
		t.Fatalf("5 verifications while the issuer is down made %d discovery requests, want 1", d)
	}
	down.Store(false)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, cloudid.ErrUnavailable) {
		t.Fatalf("issuer back, within the retry delay: err = %v, want ErrUnavailable", err)
	}
	clock.advance(11 * time.Second)
	if id, err := v.Verify(context.Background(), tok); err != nil || id.InstanceID != "123" {
		t.Fatalf("issuer back, after the retry delay: %+v, %v", id, err)
	}
	if d, k := hits.get(); d != 2 || k != 1 {
		t.Fatalf("issuer requests: %d discovery, %d keys; want 2 and 1", d, k)
	}
}

// Tokens cost the issuer a bounded number of requests: discovery once, the
// keys once, then again at most once a minute however many tokens with
// unknown keys arrive, and once an hour to notice withdrawn keys. While
// the issuer is unreachable, keys fetched before keep serving.
func TestGCPVerifyBoundsIssuerRequests(t *testing.T) {
	iss, forger := mustIssuer(t), mustIssuer(t)
	var down atomic.Bool
	var hits issuerHits
	serveIssuerCounting(t, iss, &down, &hits)
	forger.URL = iss.URL
	clock := &fakeClock{t: time.Now()}
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: "aud", Projects: map[string]string{"acme-prod": "web"}, Now: clock.now}
	inst := cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "123"}
	verify := func(signer *cloudidtest.Issuer) error {
		t.Helper()
		tok, err := signer.GCPToken(inst, "aud", clock.now(), time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), tok)
		return err
	}
	want := func(step string, discovery, keys int) {
		t.Helper()
		if d, k := hits.get(); d != discovery || k != keys {
			t.Fatalf("%s: %d discovery and %d key requests, want %d and %d", step, d, k, discovery, keys)
		}
	}
	if err := verify(iss); err != nil {
		t.Fatal(err)
	}
	want("first token", 1, 1)
	for range 20 {
		if err := verify(forger); !errors.Is(err, cloudid.ErrForged) {
			t.Fatalf("forged token: err = %v, want ErrForged", err)
		}
		if err := verify(iss); err != nil {
			t.Fatal(err)
		}
	}
	want("20 forged and 20 good tokens", 1, 1)
	clock.advance(61 * time.Second)
	for range 5 {
		if err := verify(forger); !errors.Is(err, cloudid.ErrForged) {
			t.Fatalf("forged token: err = %v, want ErrForged", err)
		}
	}
	want("a minute later, 5 forged tokens", 1, 2)
	clock.advance(time.Hour + time.Second)
	down.Store(true)
	if err := verify(iss); err != nil {
		t.Fatalf("issuer down, key known: %v", err)
	}
	want("an hour later, issuer down", 1, 3)
	if err := verify(forger); !errors.Is(err, cloudid.ErrForged) {
		t.Fatalf("forged token, issuer down: err = %v, want ErrForged", err)
	}
	want("forged token just after", 1, 3)
	clock.advance(2 * time.Minute)
	if err := verify(forger); !errors.Is(err, cloudid.ErrUnavailable) {
		t.Fatalf("unknown key, issuer down: err = %v, want ErrUnavailable", err)
	}
}

// A verifier whose first key fetch fails cannot decide anything yet.
func TestGCPVerifyKeysUnavailable(t *testing.T) {
	iss := mustIssuer(t)
	ln, err := net.Listen("tcp", "127.0.0.60:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	iss.URL = "http://" + ln.Addr().String()
	v := &cloudid.GCPVerifier{Issuer: iss.URL, Audience: "aud", Projects: map[string]string{"acme-prod": "web"}}
	tok, err := iss.GCPToken(cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "123"}, "aud", time.Now(), time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	var ce *cloudid.Error
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, cloudid.ErrUnavailable) || !errors.As(err, &ce) || strings.Contains(ce.Reason, "503") {
		t.Fatalf("err = %v, want ErrUnavailable with a reason free of internals", err)
	}
}

func TestGCPVerifyNoAudience(t *testing.T) {
	v := &cloudid.GCPVerifier{Issuer: "http://127.0.0.60:1", Projects: map[string]string{"acme-prod": "web"}}
	if _, err := v.Verify(context.Background(), "a.b.c"); !errors.Is(err, cloudid.ErrAudience) {
		t.Fatalf("err = %v, want ErrAudience", err)
	}
}
