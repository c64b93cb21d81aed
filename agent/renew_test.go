package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/agent/events"
	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
)

// renewCluster is a node's API as far as renewal goes: it issues renewed
// certificates with its CA, and records which certificate each state pull
// presented.
type renewCluster struct {
	t  *testing.T
	ca *ca.TLSCA
	ts *httptest.Server

	mu sync.Mutex
	// pulls are the serials of the client certificates state pulls came
	// with; renewals counts answered renewals.
	pulls    []*big.Int
	renewals int
	// fail, when set, answers a renewal with this status and message.
	failStatus int
	failMsg    string
	// issue, when set, replaces the certificate the node would issue.
	issue func(pub any) []byte
	// keys are the public keys renewals asked for, in order.
	keys []string
	// loseAnswers renewals are handled, then their connection is dropped
	// before the answer is written.
	loseAnswers int
	// stateStatus, when set, answers state pulls with it.
	stateStatus int
	// eventPosts are the serials of the client certificates event
	// deliveries came with.
	eventPosts []*big.Int
}

func newRenewCluster(t *testing.T) *renewCluster {
	t.Helper()
	tca, err := ca.NewTLSCA("c-test", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	c := &renewCluster{t: t, ca: tca}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agents/renew", c.renew)
	mux.HandleFunc("GET /v1/agents/state", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.pulls = append(c.pulls, r.TLS.PeerCertificates[0].SerialNumber)
		status := c.stateStatus
		c.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(api.Error{Error: "this agent certificate was replaced (renewed or re-enrolled)"})
			return
		}
		_ = json.NewEncoder(w).Encode(api.AgentState{Index: 1, ServerID: "srv-1"})
	})
	mux.HandleFunc("POST /v1/agents/events", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.eventPosts = append(c.eventPosts, r.TLS.PeerCertificates[0].SerialNumber)
		c.mu.Unlock()
		_ = json.NewEncoder(w).Encode(api.AgentEventsResponse{})
	})
	c.ts = httptest.NewUnstartedServer(mux)
	startNodeTLS(t, c.ts, tca, "n1")
	return c
}

func (c *renewCluster) renew(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Header.Get(api.MachineIDHeader) != "m1" {
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(api.Error{Error: "wrong machine"})
		return
	}
	if c.failStatus != 0 {
		w.WriteHeader(c.failStatus)
		_ = json.NewEncoder(w).Encode(api.Error{Error: c.failMsg})
		return
	}
	var req api.AgentRenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		c.t.Errorf("renew request: %v", err)
		return
	}
	block, _ := pem.Decode([]byte(req.PublicKey))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		c.t.Errorf("renew request key: %v", err)
		return
	}
	c.keys = append(c.keys, req.PublicKey)
	var certPEM []byte
	if c.issue != nil {
		certPEM = c.issue(pub)
	} else if certPEM, err = c.ca.Issue(api.RoleAgent, "srv-1", pub, nil, nil, time.Hour); err != nil {
		c.t.Error(err)
		return
	}
	c.renewals++
	if c.loseAnswers > 0 {
		c.loseAnswers--
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			c.t.Error(err)
			return
		}
		conn.Close()
		return
	}
	_ = json.NewEncoder(w).Encode(api.AgentRenewResponse{CertPEM: string(certPEM)})
}

// enroll writes an agent data dir as enrollment leaves it, with a
// certificate valid for validity, and returns it with the identity.
func (c *renewCluster) enroll(t *testing.T, validity time.Duration) (string, *Identity) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.ca.Issue(api.RoleAgent, "srv-1", key.Public(), nil, nil, validity)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := api.EncodeKeyPEM(key)
	for name, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, caFile: c.ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, &Identity{ServerID: "srv-1", Project: "web", Cluster: []string{c.ts.Listener.Addr().String()}, MachineID: "m1"}
}

func (c *renewCluster) pullSerials() []*big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*big.Int(nil), c.pulls...)
}

func readLeaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatalf("the data dir's pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

var discard = slog.New(slog.DiscardHandler)

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: t0.Add(-5 * time.Minute), NotAfter: t0.Add(30 * 24 * time.Hour)}
	for _, tc := range []struct {
		name     string
		obtained time.Time
		want     time.Time
	}{
		{"ok/two-thirds-from-receipt", t0, t0.Add(20 * 24 * time.Hour)},
		{"ok/received-late", t0.Add(3 * 24 * time.Hour), t0.Add(21 * 24 * time.Hour)},
		{"ok/received-after-expiry", t0.Add(31 * 24 * time.Hour), leaf.NotAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renewAt(leaf, tc.obtained); !got.Equal(tc.want) {
				t.Fatalf("renewAt = %s, want %s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		failures int
		left     time.Duration
		want     time.Duration
	}{
		{1, time.Hour, time.Second},
		{3, time.Hour, 4 * time.Second},
		{20, time.Hour, renewRetryMax},
		{20, 8 * time.Second, 2 * time.Second},
		{20, 0, 100 * time.Millisecond},
	} {
		if got := retryDelay(tc.failures, tc.left); got != tc.want {
			t.Errorf("retryDelay(%d, %s) = %s, want %s", tc.failures, tc.left, got, tc.want)
		}
	}
}

func TestFinishRenewal(t *testing.T) {
	c := newRenewCluster(t)
	// stage lays out the files of a renewal interrupted at a step: old is
	// the pair before, next the renewed one.
	type files struct{ crt, key, crtNext, keyNext string }
	for _, tc := range []struct {
		name    string
		layout  func(old, next [2][]byte) files
		wantNew bool
	}{
		{"ok/nothing-staged", func(old, _ [2][]byte) files { return files{crt: string(old[0]), key: string(old[1])} }, false},
		{"ok/certificate-staged-only", func(old, next [2][]byte) files {
			return files{crt: string(old[0]), key: string(old[1]), crtNext: string(next[0])}
		}, false},
		{"ok/both-staged", func(old, next [2][]byte) files {
			return files{crt: string(old[0]), key: string(old[1]), crtNext: string(next[0]), keyNext: string(next[1])}
		}, true},
		{"ok/key-committed", func(old, next [2][]byte) files {
			return files{crt: string(old[0]), key: string(next[1]), crtNext: string(next[0])}
		}, true},
		{"ok/stray-key", func(old, next [2][]byte) files {
			return files{crt: string(old[0]), key: string(old[1]), keyNext: string(next[1])}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := c.enroll(t, time.Hour)
			var old, next [2][]byte
			old[0], _ = os.ReadFile(filepath.Join(dir, certFile))
			old[1], _ = os.ReadFile(filepath.Join(dir, keyFile))
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			next[0], _ = c.ca.Issue(api.RoleAgent, "srv-1", key.Public(), nil, nil, time.Hour)
			next[1], _ = api.EncodeKeyPEM(key)
			f := tc.layout(old, next)
			for name, data := range map[string]string{certFile: f.crt, keyFile: f.key, certFile + nextSuffix: f.crtNext, keyFile + nextSuffix: f.keyNext} {
				if data != "" {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			cred, err := LoadCredential(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := old[0]
			if tc.wantNew {
				want = next[0]
			}
			leaf, _ := cred.current()
			wantCert, _ := api.ParseCertPEM(want)
			if leaf.SerialNumber.Cmp(wantCert.SerialNumber) != 0 || readLeaf(t, dir).SerialNumber.Cmp(wantCert.SerialNumber) != 0 {
				t.Fatalf("loaded serial %s, want the %s pair's %s", leaf.SerialNumber, map[bool]string{true: "new", false: "old"}[tc.wantNew], wantCert.SerialNumber)
			}
			for _, n := range []string{certFile + nextSuffix, keyFile + nextSuffix} {
				if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", n, err)
				}
			}
		})
	}
}

// A renewal replaces the pair on disk, and the puller's next pull presents
// the new certificate without a restart.
func TestRenewalReachesPuller(t *testing.T) {
	c := newRenewCluster(t)
	dir, id := c.enroll(t, time.Hour)
	old := readLeaf(t, dir)
	p, err := NewPuller(dir, id, time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.NewRenewer(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.renewOnce(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := readLeaf(t, dir)
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || renewed.PublicKey.(*ecdsa.PublicKey).Equal(old.PublicKey) {
		t.Fatal("the data dir still holds the old certificate or key")
	}
	for _, n := range []string{certFile, keyFile} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", n, err, fi.Mode().Perm())
		}
	}
	if _, err := p.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pulls := c.pullSerials()
	if len(pulls) != 2 || pulls[0].Cmp(old.SerialNumber) != 0 || pulls[1].Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("pulls presented %v; want the old certificate %s, then the renewed %s", pulls, old.SerialNumber, renewed.SerialNumber)
	}
	// A restarted agent loads the renewed pair.
	again, err := LoadCredential(dir)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := again.current(); leaf.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatal("a restart does not load the renewed certificate")
	}
}

// fakeClock drives a Renewer's now and after: each wait advances it at once.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
	// stop cancels the run after this many waits.
	stopAfter int
	cancel    context.CancelFunc
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, d)
	f.now = f.now.Add(d)
	ch := make(chan time.Time, 1)
	if f.stopAfter > 0 && len(f.waits) >= f.stopAfter {
		f.cancel()
		return ch // never fires: the run sees ctx end
	}
	ch <- f.now
	return ch
}

func TestRenewerRun(t *testing.T) {
	tests := []struct {
		name       string
		validity   time.Duration
		failStatus int
		issue      func(c *renewCluster) func(pub any) []byte
		stopAfter  int
		// wantErr is in Run's error (none: it ran until stopped).
		wantErr      string
		wantReenroll bool
		// wantFirstWait is the first wait, with a second's slack for the
		// time between writing the certificate and starting.
		wantFirstWait time.Duration
		wantRenewed   bool
	}{
		{name: "ok/renews-at-two-thirds", validity: 30 * time.Minute, stopAfter: 2, wantFirstWait: 20 * time.Minute, wantRenewed: true},
		{name: "fail/server-removed", validity: 30 * time.Minute, failStatus: http.StatusGone, wantErr: "removed", wantReenroll: true, wantFirstWait: 20 * time.Minute},
		{name: "fail/cluster-down-until-expiry", validity: 30 * time.Minute, failStatus: http.StatusServiceUnavailable, wantErr: "expired at", wantReenroll: true, wantFirstWait: 20 * time.Minute},
		{name: "fail/certificate-for-another-server", validity: 30 * time.Minute, wantErr: "expired at", wantReenroll: true, wantFirstWait: 20 * time.Minute,
			issue: func(c *renewCluster) func(any) []byte {
				return func(pub any) []byte { b, _ := c.ca.Issue(api.RoleAgent, "srv-2", pub, nil, nil, time.Hour); return b }
			}},
		{name: "fail/certificate-for-another-key", validity: 30 * time.Minute, wantErr: "expired at", wantReenroll: true, wantFirstWait: 20 * time.Minute,
			issue: func(c *renewCluster) func(any) []byte {
				return func(any) []byte {
					k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					b, _ := c.ca.Issue(api.RoleAgent, "srv-1", k.Public(), nil, nil, time.Hour)
					return b
				}
			}},
		{name: "fail/certificate-from-another-ca", validity: 30 * time.Minute, wantErr: "expired at", wantReenroll: true, wantFirstWait: 20 * time.Minute,
			issue: func(*renewCluster) func(any) []byte {
				return func(pub any) []byte {
					other, _ := ca.NewTLSCA("c-other", time.Now)
					b, _ := other.Issue(api.RoleAgent, "srv-1", pub, nil, nil, time.Hour)
					return b
				}
			}},
		{name: "fail/already-expired", validity: time.Nanosecond, wantErr: "expired at", wantReenroll: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newRenewCluster(t)
			c.failStatus, c.failMsg = tc.failStatus, "server srv-1 was removed from Rampart; enroll it again"
			if tc.issue != nil {
				c.issue = tc.issue(c)
			}
			dir, id := c.enroll(t, tc.validity)
			old := readLeaf(t, dir)
			p, err := NewPuller(dir, id, time.Second, discard)
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.NewRenewer(dir, discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := &fakeClock{now: time.Now(), stopAfter: tc.stopAfter, cancel: cancel}
			r.now, r.after = clock.Now, clock.After
			err = r.Run(ctx)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Run: %v, want an error saying %q", err, tc.wantErr)
			case tc.wantReenroll != errors.Is(err, ErrReenroll):
				t.Fatalf("Run: %v; ErrReenroll wanted: %v", err, tc.wantReenroll)
			}
			if tc.wantFirstWait > 0 {
				if len(clock.waits) == 0 || clock.waits[0] > tc.wantFirstWait || clock.waits[0] < tc.wantFirstWait-time.Second {
					t.Fatalf("waits %v; want the first to be %s", clock.waits, tc.wantFirstWait)
				}
			}
			renewed := readLeaf(t, dir).SerialNumber.Cmp(old.SerialNumber) != 0
			if renewed != tc.wantRenewed {
				t.Fatalf("renewed: %v, want %v (waits %v)", renewed, tc.wantRenewed, clock.waits)
			}
			if tc.wantRenewed {
				// The next renewal is two thirds into the new certificate.
				leaf := readLeaf(t, dir)
				if want := leaf.NotAfter.Sub(clock.waitsEnd(0)) * 2 / 3; len(clock.waits) < 2 || clock.waits[1] < want-time.Second || clock.waits[1] > want+time.Second {
					t.Fatalf("waits %v; want the second about %s", clock.waits, want)
				}
			}
		})
	}
}

// waitsEnd is the clock's time after the first n+1 waits.
func (f *fakeClock) waitsEnd(n int) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.now
	for _, d := range f.waits[n+1:] {
		t = t.Add(-d)
	}
	return t
}

func (c *renewCluster) renewKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.keys...)
}

// newRenewer builds the puller and renewer of a data dir enrolled with c.
func newRenewer(t *testing.T, c *renewCluster, validity time.Duration) (string, *Puller, *Renewer) {
	t.Helper()
	dir, id := c.enroll(t, validity)
	p, err := NewPuller(dir, id, time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.NewRenewer(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	return dir, p, r
}

func publicKeyPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func pendingExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, keyFile+pendingSuffix))
	return err == nil
}

// A renewal whose answer is lost is asked again for the same key: the
// cluster may have made it the server's agent key already, and then
// certifies no other.
func TestRenewalAfterLostAnswer(t *testing.T) {
	c := newRenewCluster(t)
	c.loseAnswers = 1
	dir, _, r := newRenewer(t, c, time.Hour)
	old := readLeaf(t, dir)
	ctx := context.Background()
	if err := r.renewOnce(ctx); err == nil {
		t.Fatal("a renewal whose answer was lost succeeded")
	}
	if !pendingExists(dir) {
		t.Fatal("the key of the unanswered renewal is not on disk")
	}
	if readLeaf(t, dir).SerialNumber.Cmp(old.SerialNumber) != 0 {
		t.Fatal("the credential changed without an answer")
	}
	// A restart in between changes nothing: the key is read from disk.
	again, err := LoadCredential(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.cred = again
	if err := r.renewOnce(ctx); err != nil {
		t.Fatal(err)
	}
	keys := c.renewKeys()
	if len(keys) != 2 || keys[0] != keys[1] {
		t.Fatalf("renewals asked for %d keys, the same twice: %v", len(keys), len(keys) == 2 && keys[0] == keys[1])
	}
	renewed := readLeaf(t, dir)
	if publicKeyPEM(t, renewed.PublicKey) != keys[0] {
		t.Fatal("the stored certificate is not for the key asked for")
	}
	if pendingExists(dir) {
		t.Fatal("the pending key is left behind after the renewal was stored")
	}
	// The next renewal is a new key again.
	if err := r.renewOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := c.renewKeys(); len(keys) != 3 || keys[2] == keys[0] {
		t.Fatal("the renewal after a completed one reused its key")
	}
}

// An agent restarted with a pending key renews at once, with that key,
// whenever its certificate is due; a pending key that is already the
// current certificate's is dropped without a renewal.
func TestRenewerFinishesPendingRenewal(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pending returns the pending key to leave in the data dir.
		pending     func(t *testing.T, dir string) []byte
		wantRenewal bool
	}{
		{name: "ok/pending-key-renewed-at-once", wantRenewal: true, pending: func(t *testing.T, _ string) []byte {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			b, _ := api.EncodeKeyPEM(k)
			return b
		}},
		{name: "ok/pending-key-already-current", pending: func(t *testing.T, dir string) []byte {
			return mustReadFile(t, filepath.Join(dir, keyFile))
		}},
		{name: "ok/unreadable-pending-key-dropped", pending: func(*testing.T, string) []byte { return []byte("garbage") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRenewCluster(t)
			dir, id := c.enroll(t, time.Hour)
			pendingPEM := tc.pending(t, dir)
			if err := os.WriteFile(filepath.Join(dir, keyFile+pendingSuffix), pendingPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := NewPuller(dir, id, time.Second, discard)
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.NewRenewer(dir, discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := &fakeClock{now: time.Now(), stopAfter: 1, cancel: cancel}
			r.now, r.after = clock.Now, clock.After
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			keys := c.renewKeys()
			if !tc.wantRenewal {
				if len(keys) != 0 {
					t.Fatalf("%d renewals, want none before the certificate is due", len(keys))
				}
				if len(clock.waits) != 1 || clock.waits[0] < 39*time.Minute {
					t.Fatalf("waits %v, want the first until two thirds of the hour", clock.waits)
				}
			} else {
				pendingKey, err := api.ParseKeyPEM(pendingPEM)
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != 1 || keys[0] != publicKeyPEM(t, pendingKey.Public()) {
					t.Fatalf("renewals asked for %d keys; want one, the pending key", len(keys))
				}
				if publicKeyPEM(t, readLeaf(t, dir).PublicKey) != keys[0] {
					t.Fatal("the data dir does not hold the pending key's certificate")
				}
			}
			if pendingExists(dir) {
				t.Fatal("the pending key is left behind")
			}
		})
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A refused renewal forgets its key; one refused as replaced (401) means
// the agent must enroll again.
func TestRenewalRefused(t *testing.T) {
	for _, tc := range []struct {
		name         string
		status       int
		wantReenroll bool
	}{
		{"fail/replaced", http.StatusUnauthorized, true},
		{"fail/removed", http.StatusGone, true},
		{"fail/bad-request", http.StatusBadRequest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRenewCluster(t)
			c.failStatus, c.failMsg = tc.status, "refused"
			dir, _, r := newRenewer(t, c, time.Hour)
			err := r.renewOnce(context.Background())
			if err == nil || errors.Is(err, ErrReenroll) != tc.wantReenroll {
				t.Fatalf("renewOnce: %v; ErrReenroll wanted: %v", err, tc.wantReenroll)
			}
			if pendingExists(dir) {
				t.Fatal("a refused renewal's key is kept")
			}
		})
	}
}

// blockingClock never lets a wait end: only a refusal report wakes the
// renewer.
type blockingClock struct{}

func (b blockingClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

// A pull refused with 401 makes the renewer try at once, long before the
// certificate is due; refused as replaced there too, the agent must enroll
// again.
func TestRefusedPullRenewsAtOnce(t *testing.T) {
	c := newRenewCluster(t)
	c.stateStatus = http.StatusUnauthorized
	c.failStatus, c.failMsg = http.StatusUnauthorized, "renewal refused: this agent certificate was replaced"
	_, p, r := newRenewer(t, c, 24*time.Hour)
	r.after = blockingClock{}.After
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	pullCtx, stopPull := context.WithCancel(ctx)
	pullErr := make(chan error, 1)
	go func() { _, err := p.Next(pullCtx, 0); pullErr <- err }()
	err := <-runErr
	stopPull()
	<-pullErr
	// Only the renewal's refusal says so: the renewer asked the cluster.
	if !errors.Is(err, ErrReenroll) || !strings.Contains(err.Error(), "renewal refused: this agent certificate was replaced") {
		t.Fatalf("Run: %v; want ErrReenroll with the renewal's refusal", err)
	}
}

// The login event poster shares the credential: after a renewal its next
// delivery presents the new certificate, not a pooled connection's old one.
func TestRenewalReachesEventPoster(t *testing.T) {
	c := newRenewCluster(t)
	dir, p, r := newRenewer(t, c, time.Hour)
	// As startLoginEvents builds it: a client of its own.
	poster, err := clusterClient(dir, p.id, p.cred, p.Addrs, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var _ events.Poster = poster
	ctx := context.Background()
	old := readLeaf(t, dir)
	if _, err := poster.PostEvents(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.renewOnce(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := readLeaf(t, dir)
	if _, err := poster.PostEvents(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	posts := append([]*big.Int(nil), c.eventPosts...)
	c.mu.Unlock()
	if len(posts) != 2 || posts[0].Cmp(old.SerialNumber) != 0 || posts[1].Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("event posts presented %v; want the old certificate %s, then the renewed %s", posts, old.SerialNumber, renewed.SerialNumber)
	}
}

// startNodeTLS starts ts as a cluster node would serve: a node certificate
// for id from tca, agents' client certificates required.
func startNodeTLS(t *testing.T, ts *httptest.Server, tca *ca.TLSCA, id string) {
	t.Helper()
	key, err := ca.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := tca.Issue(api.RoleNode, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := api.EncodeKeyPEM(key)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(tca.Cert)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
}
