package devidp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// startCode makes a device code for the public client and returns it.
func startCode(t *testing.T, ctx context.Context, e *env) *oauth2.DeviceAuthResponse {
	t.Helper()
	rp := newRelyingParty(t, ctx, e.issuer, "rampart", "", oauth2.AuthStyleInParams)
	da, err := rp.oauth.DeviceAuth(rp.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return da
}

// TestPagesRefuse covers the forms' defences: each case tampers with one
// step, and the code must still be pending afterwards.
func TestPagesRefuse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// tamper gets a fresh browser on the login page and returns the
		// page the IdP answered with.
		tamper     func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page
		wantStatus int
		wantError  string
	}{
		{
			name: "fail/login-without-csrf",
			tamper: func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page {
				login.csrf = ""
				pg, _ := b.Login(ctx, login, "alice", alicePassword)
				return mustPage(t, pg)
			},
			wantStatus: http.StatusForbidden, wantError: string(errBadForm),
		},
		{
			name: "fail/login-with-another-sessions-csrf",
			tamper: func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page {
				other, err := NewBrowser().Open(ctx, login.URL.String())
				if err != nil {
					t.Fatal(err)
				}
				login.csrf = other.csrf
				pg, _ := b.Login(ctx, login, "alice", alicePassword)
				return mustPage(t, pg)
			},
			wantStatus: http.StatusForbidden, wantError: string(errBadForm),
		},
		{
			name: "fail/login-without-cookie",
			tamper: func(t *testing.T, ctx context.Context, _ *Browser, login *Page) *Page {
				pg, _ := NewBrowser().Login(ctx, login, "alice", alicePassword)
				return mustPage(t, pg)
			},
			wantStatus: http.StatusForbidden, wantError: string(errSessionGone),
		},
		{
			name: "fail/confirm-with-pre-login-csrf",
			tamper: func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page {
				oldCSRF := login.csrf
				confirm, err := b.Login(ctx, login, "alice", alicePassword)
				if err != nil {
					t.Fatal(err)
				}
				if confirm.csrf == oldCSRF {
					t.Error("the CSRF token did not change at login")
				}
				confirm.csrf = oldCSRF
				pg, _ := b.Decide(ctx, confirm, true)
				return mustPage(t, pg)
			},
			wantStatus: http.StatusForbidden, wantError: string(errBadForm),
		},
		{
			name: "fail/confirm-by-get",
			tamper: func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page {
				if _, err := b.Login(ctx, login, "alice", alicePassword); err != nil {
					t.Fatal(err)
				}
				u, _ := login.URL.Parse(confirmPath + "?action=approve")
				pg, err := b.Open(ctx, u.String())
				if err != nil {
					t.Fatal(err)
				}
				return pg
			},
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name: "fail/too-many-wrong-passwords",
			tamper: func(t *testing.T, ctx context.Context, b *Browser, login *Page) *Page {
				var pg *Page
				for range maxLoginFailures {
					pg, _ = b.Login(ctx, login, "alice", "wrong")
					pg = mustPage(t, pg)
				}
				// The session is spent: even the right password is refused.
				right, _ := b.Login(ctx, login, "alice", alicePassword)
				if right := mustPage(t, right); right.Kind != PageCode || right.Error != string(errSessionGone) {
					t.Errorf("right password after lock-out: %q %q", right.Kind, right.Error)
				}
				return pg
			},
			wantStatus: http.StatusUnauthorized, wantError: string(errTooMany),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			e := startIdP(t, nil)
			da := startCode(t, ctx, e)
			b := NewBrowser()
			login, err := b.Open(ctx, da.VerificationURIComplete)
			if err != nil || login.Kind != PageLogin {
				t.Fatalf("open: %v, page %+v", err, login)
			}
			pg := tc.tamper(t, ctx, b, login)
			if pg.Status != tc.wantStatus || pg.Error != tc.wantError {
				t.Errorf("got HTTP %d %q, want HTTP %d %q", pg.Status, pg.Error, tc.wantStatus, tc.wantError)
			}
			if pg.Kind == PageConfirm || pg.Kind == PageDone {
				t.Errorf("tampered request reached the %s page", pg.Kind)
			}
			rp := newRelyingParty(t, ctx, e.issuer, "rampart", "", oauth2.AuthStyleInParams)
			if got := rp.pollOnce(t, da.DeviceCode); got != "authorization_pending" {
				t.Errorf("after tampering the code is %q, want authorization_pending", got)
			}
		})
	}
}

// mustPage unwraps a Browser step that is expected to land on an
// unexpected page: the page itself is what the test inspects.
func mustPage(t *testing.T, pg *Page) *Page {
	t.Helper()
	if pg == nil {
		t.Fatal("no page")
	}
	return pg
}

func TestPagesCodeEntry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := startIdP(t, nil)
	da := startCode(t, ctx, e)
	b := NewBrowser()

	pg, err := b.Open(ctx, da.VerificationURI)
	if err != nil || pg.Kind != PageCode || pg.Error != "" || pg.Status != http.StatusOK {
		t.Fatalf("bare verification URI: %v %+v", err, pg)
	}
	for _, typed := range []string{"BCDF-GHJX", "hello", "<script>alert(1)</script>"} {
		pg, err := b.Open(ctx, da.VerificationURI+"?user_code="+url.QueryEscape(typed))
		if err != nil {
			t.Fatal(err)
		}
		if pg.Kind != PageCode || pg.Error != string(errCodeUnknown) || pg.Status != http.StatusBadRequest {
			t.Errorf("code %q: kind %q error %q status %d", typed, pg.Kind, pg.Error, pg.Status)
		}
		if strings.Contains(pg.Body, "<script>") {
			t.Errorf("typed code was not escaped")
		}
	}
	// Approve once; the same code is then used up.
	if err := b.Approve(ctx, da.VerificationURIComplete, "alice", alicePassword); err != nil {
		t.Fatal(err)
	}
	pg, err = NewBrowser().Open(ctx, da.VerificationURIComplete)
	if err != nil || pg.Error != string(errCodeUsed) {
		t.Errorf("reopening an approved code: %v, %q", err, pg.Error)
	}
}

func TestPageHeaders(t *testing.T) {
	t.Parallel()
	e := startIdP(t, nil)
	resp, err := http.Get(e.issuer + devicePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
	}
	for h, w := range want {
		if !strings.Contains(resp.Header.Get(h), w) {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), w)
		}
	}
	var c *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != devicePath {
		t.Errorf("session cookie = %+v", c)
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := startIdP(t, func(c *Config) { c.ClaimNames = ClaimNames{Username: "login", Groups: "rampart.groups"} })
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer     string   `json:"issuer"`
		DeviceAuth string   `json:"device_authorization_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		Grants     []string `json:"grant_types_supported"`
		Scopes     []string `json:"scopes_supported"`
		Claims     []string `json:"claims_supported"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != e.issuer || d.DeviceAuth != e.issuer+"/device_authorization" || d.JWKS != e.issuer+"/keys" {
		t.Errorf("discovery = %+v", d)
	}
	if !slices.Contains(d.Grants, "urn:ietf:params:oauth:grant-type:device_code") {
		t.Errorf("grant types %v lack device_code", d.Grants)
	}
	if !slices.Equal(d.Scopes, supportedScopes) || !slices.Contains(d.Claims, "login") || !slices.Contains(d.Claims, "rampart") {
		t.Errorf("scopes %v claims %v", d.Scopes, d.Claims)
	}
	if !slices.Equal(d.Algs, []string{"RS256"}) {
		t.Errorf("algs %v", d.Algs)
	}
}

func TestUnknownClient(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := startIdP(t, nil)
	rp := newRelyingParty(t, ctx, e.issuer, "nobody", "", oauth2.AuthStyleInParams)
	_, err := rp.oauth.DeviceAuth(rp.ctx)
	if got := errorCode(err); got != "invalid_client" {
		t.Errorf("DeviceAuth for an unknown client: %v (code %q), want invalid_client", err, got)
	}
}

func TestServeRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	s, err := New(testConfig("http://127.0.0.1:5556"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on 0.0.0.0: %v", err)
	}
	if err := s.Serve(t.Context(), l); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Serve on %s = %v, want ErrNotLoopback", l.Addr(), err)
	}
}

// TestPollCount: /device/polls counts a pending code's token requests, found
// by its user code in any spelling, and knows no other code.
func TestPollCount(t *testing.T) {
	e := startIdP(t, nil)
	ctx := t.Context()
	rp := newRelyingParty(t, ctx, e.issuer, "rampart", "", oauth2.AuthStyleInParams)
	da, err := rp.oauth.DeviceAuth(rp.ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := func(code string) (int, int) {
		t.Helper()
		resp, err := http.Get(e.issuer + "/device/polls?user_code=" + url.QueryEscape(code))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Polls int `json:"polls"`
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return body.Polls, resp.StatusCode
	}
	if n, status := count(da.UserCode); n != 0 || status != http.StatusOK {
		t.Fatalf("before any poll: %d polls, HTTP %d", n, status)
	}
	for i := 0; i < 3; i++ {
		if got := rp.pollOnce(t, da.DeviceCode); got != "authorization_pending" {
			t.Fatalf("poll %d: %s", i, got)
		}
	}
	if n, status := count(strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " "))); n != 3 || status != http.StatusOK {
		t.Fatalf("after three polls: %d polls, HTTP %d", n, status)
	}
	if _, status := count("BCDF-BCDF"); status != http.StatusNotFound {
		t.Fatalf("an unknown code: HTTP %d, want 404", status)
	}
}
