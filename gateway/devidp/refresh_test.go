package devidp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// signInWith runs a device sign-in as alice with scopes and returns the
// tokens.
func signInWith(t *testing.T, ctx context.Context, rp *relyingParty, scopes ...string) *oauth2.Token {
	t.Helper()
	rp.oauth.Scopes = scopes
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
	return tok
}

// refresh redeems rt and returns the new tokens and the ID token's groups.
func refresh(rp *relyingParty, ctx context.Context, rt string) (*oauth2.Token, []string, error) {
	tok, err := rp.oauth.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, err
	}
	var c struct {
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&c); err != nil || idt.Subject != subjectFor("alice") {
		return nil, nil, errors.New("bad ID token")
	}
	return tok, c.Groups, nil
}

// offline_access gets a refresh token; redeeming it rotates it and tells
// the user's current groups; the users page's deactivation makes the IdP
// refuse it (invalid_grant) and the login page refuse the user.
func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := startIdP(t, nil)
	rp := newRelyingParty(t, ctx, e.issuer, "rampart", "", oauth2.AuthStyleInParams)
	var meta struct {
		Scopes []string `json:"scopes_supported"`
		Grants []string `json:"grant_types_supported"`
	}
	if err := rp.provider.Claims(&meta); err != nil || !slices.Contains(meta.Scopes, oidc.ScopeOfflineAccess) || !slices.Contains(meta.Grants, "refresh_token") {
		t.Fatalf("discovery: %+v %v", meta, err)
	}
	if tok := signInWith(t, ctx, rp, oidc.ScopeOpenID, ScopeGroups); tok.RefreshToken != "" {
		t.Fatal("a refresh token without offline_access")
	}
	rt1 := signInWith(t, ctx, rp, oidc.ScopeOpenID, ScopeGroups, oidc.ScopeOfflineAccess).RefreshToken
	if rt1 == "" {
		t.Fatal("no refresh token with offline_access")
	}
	tok, groups, err := refresh(rp, ctx, rt1)
	if err != nil || tok.RefreshToken == "" || tok.RefreshToken == rt1 || !slices.Equal(groups, []string{"admins", "dev"}) {
		t.Fatalf("refresh: %v, rotated %v, groups %v", err, tok != nil && tok.RefreshToken != rt1, groups)
	}
	if _, _, err := refresh(rp, ctx, rt1); errorCode(err) != "invalid_grant" {
		t.Fatalf("the rotated-away token: %v, want invalid_grant", err)
	}
	b := NewBrowser()
	if err := b.ChangeUser(ctx, e.issuer, "alice", ActionSetGroups, "dev"); err != nil {
		t.Fatal(err)
	}
	tok, groups, err = refresh(rp, ctx, tok.RefreshToken)
	if err != nil || !slices.Equal(groups, []string{"dev"}) {
		t.Fatalf("after the group change: %v %v", groups, err)
	}
	if err := b.ChangeUser(ctx, e.issuer, "alice", ActionDeactivate); err != nil {
		t.Fatal(err)
	}
	if _, _, err := refresh(rp, ctx, tok.RefreshToken); errorCode(err) != "invalid_grant" {
		t.Fatalf("refresh of a deactivated user: %v, want invalid_grant", err)
	}
	da, err := rp.oauth.DeviceAuth(rp.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Approve(ctx, da.VerificationURIComplete, "alice", alicePassword); !errors.Is(err, ErrUnexpectedPage) || !strings.Contains(err.Error(), "deactivated") {
		t.Fatalf("sign-in of a deactivated user: %v", err)
	}
	// Activated again: she signs in (old tokens stay gone).
	if err := b.ChangeUser(ctx, e.issuer, "alice", ActionActivate); err != nil {
		t.Fatal(err)
	}
	if signInWith(t, ctx, rp, oidc.ScopeOpenID, oidc.ScopeOfflineAccess).RefreshToken == "" {
		t.Fatal("no refresh token after re-activation")
	}
	if _, _, err := refresh(rp, ctx, tok.RefreshToken); errorCode(err) != "invalid_grant" {
		t.Fatalf("a token dropped at deactivation works again: %v", err)
	}
}

// The users page takes no form posted from another site.
func TestUsersPageRefusesCrossSite(t *testing.T) {
	t.Parallel()
	e := startIdP(t, nil)
	for name, h := range map[string]http.Header{
		"fail/cross-site":    {"Sec-Fetch-Site": {"cross-site"}},
		"fail/other-origin":  {"Origin": {"http://evil.example"}},
		"ok/same-origin":     {"Sec-Fetch-Site": {"same-origin"}, "Origin": {e.issuer}},
		"ok/no-browser-hint": {},
	} {
		t.Run(name, func(t *testing.T) {
			form := url.Values{"username": {"bob"}, "action": {ActionSetGroups}, "groups": {"ops"}}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.issuer+usersPath, strings.NewReader(form.Encode()))
			req.Header = h.Clone()
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusSeeOther
			if strings.HasPrefix(name, "fail/") {
				want = http.StatusForbidden
			}
			if resp.StatusCode != want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, want)
			}
		})
	}
}

// A restarted dev IdP (a dev node's restart) still honours the refresh
// tokens it issued and keeps the users page's deactivations, as a real IdP
// does; otherwise every signed-in person's next re-validation would fail
// with invalid_grant and the cluster would deactivate them all.
func TestRefreshTokensSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	state := filepath.Join(t.TempDir(), "devidp-state.json")
	withState := func(c *Config) { c.StateFile = state }
	first := startIdP(t, withState)
	rp := newRelyingParty(t, ctx, first.issuer, "rampart", "", oauth2.AuthStyleInParams)
	rt := signInWith(t, ctx, rp, oidc.ScopeOpenID, ScopeGroups, oidc.ScopeOfflineAccess).RefreshToken
	if err := NewBrowser().ChangeUser(ctx, first.issuer, "bob", ActionDeactivate); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	again := startIdP(t, withState) // the same state, as after a restart
	rp2 := newRelyingParty(t, ctx, again.issuer, "rampart", "", oauth2.AuthStyleInParams)
	if tok, _, err := refresh(rp2, ctx, rt); err != nil || tok.RefreshToken == "" {
		t.Fatalf("refresh after a restart: %v", err)
	}
	if !again.srv.store.isDeactivated(subjectFor("bob")) {
		t.Fatal("the restart forgot bob's deactivation")
	}
}
