package login

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// benchPeople is how many bound people one pass re-validates.
const benchPeople = 1000

// BenchmarkRevalidationPass measures one re-validation pass over 1,000
// bound people, everything real but the raft log (raftstoretest applies to
// the FSM directly): KEK open and seal, an HTTP token request per person
// to an IdP on 127.0.0.1 that answers with a rotated refresh token and a
// signed ID token (RS256, verified against its JWKS), the claims mapped,
// the unchanged groups not written, the rotated token written. The IdP's
// answers are signed before the timer starts, so the CPU it spends is only
// serving them. The pass's spreading waits are skipped: the figures are
// the work of one interval, done back to back.
//
//	go test -run '^$' -bench RevalidationPass -benchtime 5x ./gateway/login/
func BenchmarkRevalidationPass(b *testing.B) {
	idp := newBenchIdP(b)
	raw := make([]byte, ca.KEKSize)
	_, _ = rand.Read(raw)
	kek, _ := ca.NewKEK(raw)
	store := raftstoretest.New(b)
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(store, 8*time.Hour, logger)
	svc.SetRefreshTokens(kek, time.Hour)
	ctx := context.Background()
	for i := range benchPeople {
		u, err := svc.Provision(ctx, &Identity{Subject: benchSubject(i), Login: fmt.Sprintf("user%d", i), Groups: []string{"eng"}, RefreshToken: Secret(fmt.Sprintf("rt-%d", i))})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Bind(ctx, u, newKey(b), BindInfo{}); err != nil {
			b.Fatal(err)
		}
	}
	p := NewProvider(OIDCConfig{Issuer: idp.srv.URL, ClientID: "rampart"}, logger)
	ctl := control.New(control.Deps{Store: store, Auditor: control.StoreAuditor{Store: store}, Logger: logger})
	r := NewRevalidator(RevalidatorConfig{Interval: 5 * time.Minute, Store: store, IdP: p, Sealer: kek, Control: ctl, Users: svc,
		Wait: func(context.Context, time.Duration) error { return nil }, Logger: logger})
	r.pass(ctx, time.Now()) // discovery, keys and connections warmed

	writes0 := store.Applied()
	before := r.Stats()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		r.pass(ctx, time.Now())
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	after := r.Stats()
	if got := after.Confirmed - before.Confirmed; got != uint64(b.N*benchPeople) {
		b.Fatalf("%d confirmed, want %d (stats %+v)", got, b.N*benchPeople, after)
	}
	b.ReportMetric(float64(after.Requests-before.Requests)/float64(b.N), "idp-requests/pass")
	b.ReportMetric(float64(idp.served.Load())/float64(b.N+1), "idp-http/pass")
	b.ReportMetric(float64(store.Applied()-writes0)/float64(b.N), "raft-writes/pass")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/pass")
}

func benchSubject(i int) string { return fmt.Sprintf("sub-%04d", i) }

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIdP answers refresh_token grants with answers signed in advance:
// refresh token rt-N (or a rotation of it) gets person N's ID token and a
// new refresh token.
type benchIdP struct {
	srv     *httptest.Server
	answers [benchPeople][]byte
	served  atomic.Int64
}

func newBenchIdP(b *testing.B) *benchIdP {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	h := &benchIdP{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		u := h.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": u, "jwks_uri": u + "/jwks", "token_endpoint": u + "/token",
			"device_authorization_endpoint": u + "/device", "authorization_endpoint": u + "/auth", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		h.served.Add(1)
		var n int
		rt := r.FormValue("refresh_token")
		if _, err := fmt.Sscanf(strings.TrimSuffix(rt, "x"), "rt-%d", &n); err != nil || n < 0 || n >= benchPeople {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(h.answers[n])
	})
	h.srv = httptest.NewServer(mux)
	b.Cleanup(h.srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range benchPeople {
		claims := map[string]any{"iss": h.srv.URL, "aud": "rampart", "sub": benchSubject(i), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"preferred_username": fmt.Sprintf("user%d", i), "groups": []string{"eng"}}
		idt, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			b.Fatal(err)
		}
		// Rotation: rt-N becomes rt-Nx, which maps back to person N.
		h.answers[i], _ = json.Marshal(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300,
			"refresh_token": fmt.Sprintf("rt-%dx", i), "id_token": idt})
	}
	return h
}
