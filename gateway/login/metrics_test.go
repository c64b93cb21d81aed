package login

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// Each request to the IdP is timed under its endpoint and status; a 5xx
// and a request that got no answer are counted as errors.
func TestIdPMetrics(t *testing.T) {
	h := newHostileIdP(t, func(*hostileIdP) (int, map[string]any) { return 500, map[string]any{"error": "server_error"} })
	m := NewMetrics(nil)
	p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart", HTTPClient: &http.Client{Transport: m.Transport(nil)}},
		slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	da, err := p.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, da); !errors.Is(err, ErrIdPFailed) {
		t.Fatalf("Wait = %v, want ErrIdPFailed", err)
	}
	if n := testutil.CollectAndCount(m.IdPSeconds); n != 3 {
		t.Errorf("rampart_idp_request_seconds has %d series, want 3", n)
	}
	for _, s := range [][2]string{{"discovery", "200"}, {"device_authorization", "200"}, {"token", "500"}} {
		var out dto.Metric
		if err := m.IdPSeconds.WithLabelValues(s[0], s[1]).(prometheus.Histogram).Write(&out); err != nil {
			t.Fatal(err)
		}
		if n := out.GetHistogram().GetSampleCount(); n < 1 {
			t.Errorf("rampart_idp_request_seconds{endpoint=%q,code=%q}: %d requests", s[0], s[1], n)
		}
	}
	if got := testutil.ToFloat64(m.IdPErrors.WithLabelValues("token")); got != 1 {
		t.Fatalf(`rampart_idp_request_errors_total{endpoint="token"} = %v, want 1`, got)
	}
	if got := testutil.CollectAndCount(m.IdPErrors); got != 1 {
		t.Fatalf("rampart_idp_request_errors_total has %d series, want 1 (the 200s are no errors)", got)
	}

	// An IdP that is not there: no answer at all.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	p = NewProvider(OIDCConfig{Issuer: gone.URL, ClientID: "rampart", HTTPClient: &http.Client{Transport: m.Transport(nil)}},
		slog.New(slog.DiscardHandler))
	if _, err := p.Start(ctx); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("Start = %v, want ErrIdPUnavailable", err)
	}
	if got := testutil.ToFloat64(m.IdPErrors.WithLabelValues("discovery")); got != 1 {
		t.Fatalf(`rampart_idp_request_errors_total{endpoint="discovery"} = %v, want 1`, got)
	}
}

func TestIdPEndpoint(t *testing.T) {
	for path, want := range map[string]string{
		"/.well-known/openid-configuration":             "discovery",
		"/realms/x/.well-known/openid-configuration":    "discovery",
		"/oauth/v2/device_authorization":                "device_authorization",
		"/realms/x/protocol/openid-connect/auth/device": "device_authorization",
		"/oauth/v2/token":                               "token",
		"/oauth/v2/keys":                                "jwks",
		"/realms/x/protocol/openid-connect/certs":       "jwks",
		"/.well-known/jwks.json":                        "jwks",
		"/oidc/v1/userinfo":                             "userinfo",
		"/anything/else":                                "other",
	} {
		if got := idpEndpoint(path); got != want {
			t.Errorf("idpEndpoint(%q) = %q, want %q", path, got, want)
		}
	}
}

// rampart_bindings_live counts the bindings that have not expired, at the
// time of the scrape.
func TestBindingsCollector(t *testing.T) {
	ctx := context.Background()
	store := raftstoretest.New(t)
	svc := NewService(store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	alice, err := svc.Provision(ctx, &Identity{Subject: "s-alice", Login: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := svc.Bind(ctx, alice, newKey(t), BindInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	c := NewBindingsCollector(store.State, func() time.Time { return now })
	if got := testutil.ToFloat64(c); got != 2 {
		t.Fatalf("rampart_bindings_live = %v, want 2", got)
	}
	now = now.Add(2 * time.Hour)
	if got := testutil.ToFloat64(c); got != 0 {
		t.Fatalf("rampart_bindings_live after expiry = %v, want 0", got)
	}
}
