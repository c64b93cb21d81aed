package login

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Sign-ins ask for offline_access when the IdP lists it (or when told to),
// and hand the refresh token on.
func TestProviderAsksForOfflineAccess(t *testing.T) {
	cases := []struct {
		name    string
		listed  []string
		mode    string
		wantAsk bool
	}{
		{"ok/auto-listed", []string{"openid", "offline_access"}, "", true},
		{"ok/auto-not-listed", []string{"openid"}, OfflineAuto, false},
		{"ok/on-not-listed", nil, OfflineOn, true},
		{"ok/off-listed", []string{"openid", "offline_access"}, OfflineOff, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h *hostileIdP
			h = newHostileIdP(t, func(*hostileIdP) (int, map[string]any) {
				code, body := tokenReply(h.sign(t, h.key, h.claims(nil)))
				body["refresh_token"] = "rt-1"
				return code, body
			})
			h.scopes = tc.listed
			p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart", OfflineAccess: tc.mode}, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			da, err := p.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			asked := slices.Contains(strings.Fields((<-h.form).Get("scope")), "offline_access")
			if asked != tc.wantAsk || p.OffersRefresh() != tc.wantAsk {
				t.Fatalf("asked for offline_access: %v (offers %v), want %v", asked, p.OffersRefresh(), tc.wantAsk)
			}
			id, err := p.Wait(ctx, da)
			if err != nil {
				t.Fatal(err)
			}
			if id.RefreshToken.Reveal() != "rt-1" {
				t.Fatalf("refresh token %q", id.RefreshToken.Reveal())
			}
		})
	}
}

// Each answer of the token endpoint to a refresh is classified: confirmed
// (rotated or not, with or without an ID token), refused (invalid_grant,
// another subject), rate limited (429, Retry-After), or unverified.
func TestProviderRefresh(t *testing.T) {
	type answer func(t *testing.T, h *hostileIdP) (int, map[string]any)
	withRT := func(rt string, idt func(t *testing.T, h *hostileIdP) string) answer {
		return func(t *testing.T, h *hostileIdP) (int, map[string]any) {
			body := map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300}
			if rt != "" {
				body["refresh_token"] = rt
			}
			if idt != nil {
				body["id_token"] = idt(t, h)
			}
			return 200, body
		}
	}
	signed := func(mod func(map[string]any)) func(t *testing.T, h *hostileIdP) string {
		return func(t *testing.T, h *hostileIdP) string { return h.sign(t, h.key, h.claims(mod)) }
	}
	cases := []struct {
		name      string
		answer    answer
		header    http.Header
		wantKind  RefreshKind
		wantErr   bool
		wantToken string
		wantGroup []string // nil: no identity
		reason    string
	}{
		{name: "ok/rotated-with-id-token", answer: withRT("rt-2", signed(func(c map[string]any) { c["groups"] = []string{"eng"} })), wantToken: "rt-2", wantGroup: []string{"eng"}},
		{name: "ok/not-rotated-no-id-token", answer: withRT("", nil), wantToken: "rt-1"},
		{name: "fail/invalid-grant", wantErr: true, wantKind: RefreshRefused, reason: "invalid_grant: User disabled", answer: func(*testing.T, *hostileIdP) (int, map[string]any) {
			return 400, map[string]any{"error": "invalid_grant", "error_description": "User disabled"}
		}},
		{name: "fail/other-subject", wantErr: true, wantKind: RefreshRefused, reason: "the refreshed ID token names another subject",
			answer: withRT("rt-2", signed(func(c map[string]any) { c["sub"] = "sub-2" }))},
		{name: "fail/rate-limited", wantErr: true, wantKind: RefreshRateLimited, header: http.Header{"Retry-After": {"7"}}, answer: func(*testing.T, *hostileIdP) (int, map[string]any) {
			return 429, map[string]any{"error": "slow_down"}
		}},
		{name: "fail/server-error", wantErr: true, wantKind: RefreshUnverified, answer: func(*testing.T, *hostileIdP) (int, map[string]any) {
			return 503, map[string]any{}
		}},
		{name: "fail/bad-client", wantErr: true, wantKind: RefreshUnverified, answer: func(*testing.T, *hostileIdP) (int, map[string]any) {
			return 401, map[string]any{"error": "invalid_client"}
		}},
		{name: "fail/bad-signature", wantErr: true, wantKind: RefreshUnverified, answer: withRT("rt-2", func(t *testing.T, h *hostileIdP) string {
			return h.sign(t, h.otherKey, h.claims(nil))
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h *hostileIdP
			h = newHostileIdP(t, func(*hostileIdP) (int, map[string]any) { return tc.answer(t, h) })
			h.tokenHeader = tc.header
			p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart"}, slog.New(slog.DiscardHandler))
			got, err := p.Refresh(context.Background(), Secret("rt-1"), "sub-1")
			if f := <-h.form; f.Get("grant_type") != "refresh_token" || f.Get("refresh_token") != "rt-1" {
				t.Fatalf("token request %v", f)
			}
			if tc.wantErr {
				var re *RefreshError
				if !errors.As(err, &re) || re.Kind != tc.wantKind || (tc.reason != "" && re.Reason != tc.reason) {
					t.Fatalf("err = %#v, want kind %d reason %q", err, tc.wantKind, tc.reason)
				}
				if strings.Contains(err.Error(), "rt-1") || strings.Contains(re.Reason, "rt-1") {
					t.Fatalf("the error carries the token: %v", err)
				}
				if tc.header != nil && re.RetryAfter != 7*time.Second {
					t.Fatalf("retry after %s", re.RetryAfter)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RefreshToken.Reveal() != tc.wantToken {
				t.Fatalf("token %q, want %q", got.RefreshToken.Reveal(), tc.wantToken)
			}
			if (got.Identity == nil) != (tc.wantGroup == nil) || (got.Identity != nil && !slices.Equal(got.Identity.Groups, tc.wantGroup)) {
				t.Fatalf("identity %+v, want groups %v", got.Identity, tc.wantGroup)
			}
		})
	}

	t.Run("fail/unreachable", func(t *testing.T) {
		h := newHostileIdP(t, func(*hostileIdP) (int, map[string]any) { return 200, nil })
		p := NewProvider(OIDCConfig{Issuer: h.srv.URL, ClientID: "rampart"}, slog.New(slog.DiscardHandler))
		if _, err := p.Start(context.Background()); err != nil { // discovery done
			t.Fatal(err)
		}
		h.srv.CloseClientConnections()
		h.srv.Listener.Close()
		_, err := p.Refresh(context.Background(), Secret("rt-1"), "sub-1")
		var re *RefreshError
		if !errors.As(err, &re) || re.Kind != RefreshUnverified || re.Reason != "the identity provider cannot be reached" {
			t.Fatalf("err = %v", err)
		}
	})
}
