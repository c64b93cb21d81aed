package login

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// hostileIdP is a minimal OpenID provider for this package's unit tests: it
// answers the device flow with whatever token the case asks for, so the
// tests can hand the Provider tokens no honest IdP would issue. (Proof
// against a real provider is in the frontdoor and e2e tests, which use the
// dev IdP built on zitadel's op.)
type hostileIdP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	otherKey *rsa.PrivateKey
	// token builds the token endpoint's answer.
	token func(idp *hostileIdP) (status int, body map[string]any)
	// device, when set, answers the device authorization endpoint.
	device http.HandlerFunc
	// scopes, when set, are listed as scopes_supported in discovery;
	// tokenHeader is added to the token endpoint's answers; form is the
	// last token or device request's form.
	scopes      []string
	tokenHeader http.Header
	form        chan url.Values
}

func newHostileIdP(t *testing.T, token func(*hostileIdP) (int, map[string]any)) *hostileIdP {
	t.Helper()
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	h := &hostileIdP{key: k1, otherKey: k2, token: token, form: make(chan url.Values, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := h.srv.URL
		meta := map[string]any{
			"issuer": u, "jwks_uri": u + "/jwks", "token_endpoint": u + "/token",
			"device_authorization_endpoint": u + "/device", "authorization_endpoint": u + "/auth",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		if h.scopes != nil {
			meta["scopes_supported"] = h.scopes
		}
		writeTestJSON(w, 200, meta)
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &h.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		h.keepForm(r)
		if h.device != nil {
			h.device(w, r)
			return
		}
		writeTestJSON(w, 200, map[string]any{"device_code": "dc", "user_code": "BCDF-GHJK",
			"verification_uri": h.srv.URL + "/code", "verification_uri_complete": h.srv.URL + "/code?user_code=BCDF-GHJK",
			"expires_in": 60, "interval": 1})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		h.keepForm(r)
		for k, v := range h.tokenHeader {
			w.Header()[k] = v
		}
		status, body := h.token(h)
		writeTestJSON(w, status, body)
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// keepForm keeps r's form as the last one seen.
func (h *hostileIdP) keepForm(r *http.Request) {
	_ = r.ParseForm()
	select {
	case <-h.form:
	default:
	}
	h.form <- r.PostForm
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sign makes an ID token with claims, signed by key.
func (h *hostileIdP) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (h *hostileIdP) claims(mod func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": h.srv.URL, "aud": "rampart", "sub": "sub-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"preferred_username": "alice", "email": "alice@example.com", "groups": []string{"eng", "rampart-admins"}}
	if mod != nil {
		mod(c)
	}
	return c
}

func tokenReply(idToken string) (int, map[string]any) {
	return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": idToken}
}

func TestProviderVerifiesIDToken(t *testing.T) {
	cases := []struct {
		name    string
		token   func(t *testing.T, h *hostileIdP) (int, map[string]any)
		wantErr error
		check   func(t *testing.T, id *Identity)
	}{
		{name: "ok/valid-token", token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.key, h.claims(nil)))
		}, check: func(t *testing.T, id *Identity) {
			if id.Login != "alice" || id.Subject != "sub-1" || !id.Admin || len(id.Groups) != 2 {
				t.Fatalf("identity = %+v", id)
			}
		}},
		{name: "fail/wrong-issuer", wantErr: ErrBadToken, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.key, h.claims(func(c map[string]any) { c["iss"] = "https://evil.example" })))
		}},
		{name: "fail/wrong-audience", wantErr: ErrBadToken, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.key, h.claims(func(c map[string]any) { c["aud"] = "someone-else" })))
		}},
		{name: "fail/expired", wantErr: ErrBadToken, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.key, h.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })))
		}},
		{name: "fail/bad-signature", wantErr: ErrBadToken, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.otherKey, h.claims(nil)))
		}},
		{name: "fail/no-id-token", wantErr: ErrBadToken, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer"}
		}},
		{name: "fail/no-username-claim", wantErr: ErrBadIdentity, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return tokenReply(h.sign(t, h.key, h.claims(func(c map[string]any) { delete(c, "preferred_username") })))
		}},
		{name: "fail/denied", wantErr: ErrDenied, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return 400, map[string]any{"error": "access_denied"}
		}},
		{name: "fail/expired-code", wantErr: ErrCodeExpired, token: func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			return 400, map[string]any{"error": "expired_token"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h *hostileIdP
			h = newHostileIdP(t, func(*hostileIdP) (int, map[string]any) { return tc.token(t, h) })
			p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart", Claims: ClaimMapping{AdminGroup: "rampart-admins"}}, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			da, err := p.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.Wait(ctx, da)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, id)
		})
	}
}

// TestProviderIdPErrors: each error the IdP answers with gets its own
// message for the person, and "cannot be reached" is kept for an IdP that
// does not answer.
func TestProviderIdPErrors(t *testing.T) {
	oauthErr := func(status int, code string) func(*hostileIdP) (int, map[string]any) {
		return func(*hostileIdP) (int, map[string]any) { return status, map[string]any{"error": code} }
	}
	cases := []struct {
		name string
		// token answers the token endpoint; device, when set, the device
		// authorization endpoint instead.
		token   func(*hostileIdP) (int, map[string]any)
		device  http.HandlerFunc
		wantErr error
	}{
		{name: "fail/access-denied", token: oauthErr(400, "access_denied"), wantErr: ErrDenied},
		{name: "fail/expired-token", token: oauthErr(400, "expired_token"), wantErr: ErrCodeExpired},
		{name: "fail/invalid-grant", token: oauthErr(400, "invalid_grant"), wantErr: ErrCodeRejected},
		{name: "fail/server-error", token: oauthErr(500, "server_error"), wantErr: ErrIdPFailed},
		{name: "fail/temporarily-unavailable", token: oauthErr(503, "temporarily_unavailable"), wantErr: ErrIdPFailed},
		{name: "fail/invalid-client", token: oauthErr(401, "invalid_client"), wantErr: ErrIdPRefused},
		{name: "fail/proxy-502-page", device: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>Bad Gateway</html>"))
		}, wantErr: ErrIdPFailed},
		{name: "fail/device-endpoint-server-error", device: func(w http.ResponseWriter, _ *http.Request) {
			writeTestJSON(w, 500, map[string]any{"error": "server_error"})
		}, wantErr: ErrIdPFailed},
		{name: "fail/device-endpoint-unauthorized-client", device: func(w http.ResponseWriter, _ *http.Request) {
			writeTestJSON(w, 400, map[string]any{"error": "unauthorized_client"})
		}, wantErr: ErrIdPRefused},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token
			if token == nil {
				token = oauthErr(400, "authorization_pending")
			}
			h := newHostileIdP(t, token)
			if tc.device != nil {
				h.device = tc.device
			}
			p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart"}, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			da, err := p.Start(ctx)
			if err == nil {
				_, err = p.Wait(ctx, da)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "cannot be reached") {
				t.Fatalf("an IdP that answered is reported as unreachable: %q", err)
			}
			seen[err.Error()] = tc.name
		})
	}
	for _, want := range []error{ErrDenied, ErrCodeExpired, ErrCodeRejected, ErrIdPFailed, ErrIdPRefused} {
		if _, ok := seen[want.Error()]; !ok {
			t.Errorf("no case ended with %q", want)
		}
	}
}

func TestProviderUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p := NewProvider(OIDCConfig{Issuer: url, ClientID: "rampart"}, slog.New(slog.DiscardHandler))
	if _, err := p.Start(context.Background()); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("err = %v, want ErrIdPUnavailable", err)
	}

	// The IdP goes away while the flow polls.
	h := newHostileIdP(t, func(*hostileIdP) (int, map[string]any) { return 400, map[string]any{"error": "authorization_pending"} })
	p = NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart"}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	da, err := p.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.CloseClientConnections()
	h.srv.Listener.Close()
	if _, err := p.Wait(ctx, da); !errors.Is(err, ErrIdPUnavailable) {
		t.Fatalf("poll after the IdP went away: err = %v, want ErrIdPUnavailable", err)
	}
}

func TestClaimMappingNested(t *testing.T) {
	m := ClaimMapping{Username: "upn", Groups: "realm.groups", AdminGroup: "ops"}
	id, err := m.Map("iss", "s", map[string]any{"upn": "bob", "realm": map[string]any{"groups": []any{"ops", "bad\ngroup", 7}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if id.Login != "bob" || len(id.Groups) != 1 || id.Groups[0] != "ops" || !id.Admin {
		t.Fatalf("identity = %+v; want bob, groups [ops] (unsafe and non-string dropped), admin", id)
	}
}
