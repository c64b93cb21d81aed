package devidp

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// flowCase is one device-flow sign-in, driven like rampartd drives it.
type flowCase struct {
	name   string
	cfg    func(*Config)
	client string // default "rampart" (public)
	secret string
	style  oauth2.AuthStyle // default AuthStyleInParams
	// act plays the person at the browser while the relying party polls.
	act func(t *testing.T, ctx context.Context, e *env, da *oauth2.DeviceAuthResponse)
	// pollOnce replaces the polling loop with one hand-made poll.
	pollOnce bool
	// want is the RFC error code the client ends with; "" means tokens.
	want  string
	check func(t *testing.T, ctx context.Context, rp *relyingParty, claims map[string]any, tok *oauth2.Token)
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func approveAs(user, password string) func(*testing.T, context.Context, *env, *oauth2.DeviceAuthResponse) {
	return func(t *testing.T, ctx context.Context, _ *env, da *oauth2.DeviceAuthResponse) {
		if err := NewBrowser().Approve(ctx, da.VerificationURIComplete, user, password); err != nil {
			t.Fatalf("approve: %v", err)
		}
	}
}

func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	cases := []flowCase{
		{
			name: "ok/approve",
			act:  approveAs("alice", alicePassword),
			check: func(t *testing.T, ctx context.Context, rp *relyingParty, c map[string]any, tok *oauth2.Token) {
				wantClaims(t, c, map[string]any{
					"sub":                subjectFor("alice"),
					"email":              "alice@example.com",
					"email_verified":     true,
					"name":               "Alice Liddell",
					"preferred_username": "alice",
					"groups":             []any{"admins", "dev"},
				})
				// The access token works on userinfo.
				ui, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
				if err != nil {
					t.Fatalf("userinfo: %v", err)
				}
				if ui.Subject != subjectFor("alice") || ui.Email != "alice@example.com" {
					t.Errorf("userinfo = %+v", ui)
				}
				if got := rp.polls.outcomes(); slices.Contains(got, "slow_down") {
					t.Errorf("unexpected slow_down: %v", got)
				}
			},
		},
		{
			name:   "ok/confidential-client-basic-auth",
			client: "rampart-conf", secret: confSecret, style: oauth2.AuthStyleInHeader,
			act: approveAs("bob", bobPassword),
			check: func(t *testing.T, _ context.Context, _ *relyingParty, c map[string]any, _ *oauth2.Token) {
				wantClaims(t, c, map[string]any{"preferred_username": "bob", "name": "bob", "groups": []any{"ops"}})
			},
		},
		{
			// zitadel authenticates device_code polls with HTTP Basic only:
			// a secret in the form is not looked at, the poll counts as a
			// public client's, and once approved it is refused.
			name:   "fail/confidential-client-secret-in-params",
			client: "rampart-conf", secret: confSecret, style: oauth2.AuthStyleInParams,
			act:  approveAs("bob", bobPassword),
			want: "invalid_client",
		},
		{
			// The mirror image: a public client must not send Basic auth
			// (x/oauth2 sends "rampart:" with an empty secret), or the
			// first poll is refused.
			name:  "fail/public-client-basic-auth",
			style: oauth2.AuthStyleInHeader,
			act:   func(*testing.T, context.Context, *env, *oauth2.DeviceAuthResponse) {},
			want:  "unauthorized_client",
		},
		{
			name: "fail/deny",
			act: func(t *testing.T, ctx context.Context, _ *env, da *oauth2.DeviceAuthResponse) {
				if err := NewBrowser().Deny(ctx, da.VerificationURIComplete, "alice", alicePassword); err != nil {
					t.Fatalf("deny: %v", err)
				}
			},
			want: "access_denied",
		},
		{
			name: "fail/expired-code",
			act: func(t *testing.T, ctx context.Context, e *env, da *oauth2.DeviceAuthResponse) {
				e.clock.Advance(DefaultDeviceCodeTTL + time.Second)
				pg, err := NewBrowser().Open(ctx, da.VerificationURIComplete)
				if err != nil {
					t.Fatal(err)
				}
				if pg.Kind != PageCode || pg.Error != string(errCodeExpired) {
					t.Errorf("page for an expired code: kind %q, error %q", pg.Kind, pg.Error)
				}
			},
			want: "expired_token",
		},
		{
			name: "ok/slow-down-then-approve",
			cfg:  func(c *Config) { c.SlowDownPolls = 1 },
			act:  approveAs("alice", alicePassword),
			check: func(t *testing.T, _ context.Context, rp *relyingParty, c map[string]any, _ *oauth2.Token) {
				// One request per poll (AuthStyle is explicit), the first
				// answered with slow_down, the next with tokens.
				if got := rp.polls.outcomes(); !slices.Equal(got, []string{"slow_down", "token"}) {
					t.Errorf("token endpoint answers = %v, want [slow_down token]", got)
				}
			},
		},
		{
			name: "fail/wrong-password",
			act: func(t *testing.T, ctx context.Context, _ *env, da *oauth2.DeviceAuthResponse) {
				b := NewBrowser()
				pg, err := b.Open(ctx, da.VerificationURIComplete)
				if err != nil {
					t.Fatal(err)
				}
				_, err = b.Login(ctx, pg, "alice", "not-"+alicePassword)
				if !errors.Is(err, ErrUnexpectedPage) || !strings.Contains(err.Error(), string(errWrongLogin)) {
					t.Fatalf("wrong password: err = %v, want the login page with %q", err, errWrongLogin)
				}
			},
			pollOnce: true,
			want:     "authorization_pending",
		},
		{
			name: "ok/second-idp-with-nested-groups-claim",
			cfg: func(c *Config) {
				c.ClaimNames = ClaimNames{Username: "login", Groups: "rampart.groups"}
			},
			act: approveAs("alice", alicePassword),
			check: func(t *testing.T, _ context.Context, _ *relyingParty, c map[string]any, _ *oauth2.Token) {
				wantClaims(t, c, map[string]any{
					"login":   "alice",
					"rampart": map[string]any{"groups": []any{"admins", "dev"}},
				})
				for _, absent := range []string{"preferred_username", "groups"} {
					if v, ok := c[absent]; ok {
						t.Errorf("claim %q = %v, want it absent", absent, v)
					}
				}
			},
		},
		{
			name: "ok/code-typed-lowercase-with-spaces",
			act: func(t *testing.T, ctx context.Context, _ *env, da *oauth2.DeviceAuthResponse) {
				typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " "))
				b := NewBrowser()
				pg, err := b.Open(ctx, da.VerificationURI+"?user_code="+url.QueryEscape(typed))
				if err != nil {
					t.Fatal(err)
				}
				if pg, err = b.Login(ctx, pg, "ALICE", alicePassword); err != nil {
					t.Fatal(err) // user names are case-insensitive too
				}
				if _, err = b.Decide(ctx, pg, true); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, _ context.Context, _ *relyingParty, c map[string]any, _ *oauth2.Token) {
				wantClaims(t, c, map[string]any{"preferred_username": "alice"})
			},
		},
		{
			name: "ok/hostile-username-claim",
			cfg: func(c *Config) {
				c.Users = append(c.Users, User{Username: "mallory", Password: "m", Email: "m@example.com", UsernameClaim: "../root\nx y"})
			},
			act: approveAs("mallory", "m"),
			check: func(t *testing.T, _ context.Context, _ *relyingParty, c map[string]any, _ *oauth2.Token) {
				wantClaims(t, c, map[string]any{"preferred_username": "../root\nx y", "groups": []any{}})
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runFlow(t, tc)
		})
	}
}

func runFlow(t *testing.T, tc flowCase) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := startIdP(t, tc.cfg)
	if tc.client == "" {
		tc.client = "rampart"
	}
	if tc.style == oauth2.AuthStyleAutoDetect {
		tc.style = oauth2.AuthStyleInParams
	}
	rp := newRelyingParty(t, ctx, e.issuer, tc.client, tc.secret, tc.style)

	da, err := rp.oauth.DeviceAuth(rp.ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if !userCodeShape.MatchString(da.UserCode) {
		t.Errorf("user code %q is not like BCDF-GHJK", da.UserCode)
	}
	if da.VerificationURI != e.issuer+"/device" || da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode {
		t.Errorf("verification URIs = %q, %q", da.VerificationURI, da.VerificationURIComplete)
	}
	if da.Interval != 1 || da.Expiry.IsZero() {
		t.Errorf("interval %d, expiry %v", da.Interval, da.Expiry)
	}

	if tc.pollOnce {
		tc.act(t, ctx, e, da)
		if got := rp.pollOnce(t, da.DeviceCode); got != tc.want {
			t.Fatalf("poll = %q, want %q", got, tc.want)
		}
		return
	}

	// Poll from the start, as rampartd does, while the person acts.
	type result struct {
		tok *oauth2.Token
		err error
	}
	resc := make(chan result, 1)
	go func() {
		tok, err := rp.oauth.DeviceAccessToken(rp.ctx, da)
		resc <- result{tok, err}
	}()
	tc.act(t, ctx, e, da)
	res := <-resc

	if tc.want != "" {
		if got := errorCode(res.err); got != tc.want {
			t.Fatalf("DeviceAccessToken error = %v (code %q), want %q", res.err, got, tc.want)
		}
		return
	}
	if res.err != nil {
		t.Fatalf("DeviceAccessToken: %v", res.err)
	}
	raw, _ := res.tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token in the token response")
	}
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Issuer != e.issuer || !slices.Contains(idt.Audience, tc.client) {
		t.Errorf("issuer %q audience %v", idt.Issuer, idt.Audience)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if tc.check != nil {
		tc.check(t, ctx, rp, claims, res.tok)
	}
	// A device code buys one set of tokens.
	if got := rp.pollOnce(t, da.DeviceCode); got != "access_denied" {
		t.Errorf("second poll with a spent code = %q, want access_denied", got)
	}
}

func wantClaims(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !equalJSON(g, w) {
			t.Errorf("claim %q = %#v, want %#v", k, got[k], w)
		}
	}
}

// equalJSON compares values decoded from JSON.
func equalJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !equalJSON(v, bm[k]) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !equalJSON(a[i], bs[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func TestSubjectIsStable(t *testing.T) {
	t.Parallel()
	a1, a2 := subjectFor("alice"), subjectFor(strings.Clone("alice"))
	if a1 != a2 || a1 == subjectFor("bob") || !strings.HasPrefix(a1, "dev-") {
		t.Fatal("subjects must be stable per user and differ between users")
	}
}

func TestScopesReleaseClaims(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := startIdP(t, nil)
	rp := newRelyingParty(t, ctx, e.issuer, "rampart", "", oauth2.AuthStyleInParams)
	rp.oauth.Scopes = []string{oidc.ScopeOpenID, "email"}
	da, err := rp.oauth.DeviceAuth(rp.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewBrowser().Approve(ctx, da.VerificationURIComplete, "alice", alicePassword); err != nil {
		t.Fatal(err)
	}
	tok, err := rp.oauth.DeviceAccessToken(rp.ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	wantClaims(t, c, map[string]any{"email": "alice@example.com", "email_verified": true})
	for _, absent := range []string{"preferred_username", "name", "groups"} {
		if _, ok := c[absent]; ok {
			t.Errorf("claim %q released without its scope", absent)
		}
	}
}
