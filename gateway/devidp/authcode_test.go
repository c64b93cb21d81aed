package devidp

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const consoleRedirect = "https://127.0.0.1:8443/console/callback"

// codeFlow runs an authorization-code sign-in as a browser would, up to the
// redirect back to the client: the code it carries (or the error it names).
func codeFlow(t *testing.T, e *env, cfg *oauth2.Config, username, password string, opts ...oauth2.AuthCodeOption) (code, state string, errCode string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), consoleRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	b := &Browser{HTTP: hc}
	pg, err := b.Open(ctx, cfg.AuthCodeURL("st-1", opts...))
	if err != nil {
		t.Fatal(err)
	}
	if back != nil { // op refused the request and sent the browser back
		return "", back.Query().Get("state"), back.Query().Get("error")
	}
	if err := pg.expect("signin"); err != nil {
		t.Fatalf("%v\n%s", err, pg.Body)
	}
	if _, err := b.post(ctx, pg, url.Values{"csrf": {pg.csrf}, "username": {username}, "password": {password}}); err != nil {
		t.Fatal(err)
	}
	if back == nil {
		t.Fatal("the sign-in did not lead back to the client")
	}
	return back.Query().Get("code"), back.Query().Get("state"), back.Query().Get("error")
}

func TestAuthorizationCodeWithPKCE(t *testing.T) {
	e := startIdP(t, func(c *Config) { c.Clients[0].RedirectURIs = []string{consoleRedirect} })
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: "rampart", Endpoint: prov.Endpoint(), RedirectURL: consoleRedirect, Scopes: []string{oidc.ScopeOpenID, "profile", "groups"}}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	verifier := oauth2.GenerateVerifier()

	t.Run("ok/signed-in-with-groups", func(t *testing.T) {
		code, state, _ := codeFlow(t, e, cfg, "alice", alicePassword, oauth2.S256ChallengeOption(verifier))
		if code == "" || state != "st-1" {
			t.Fatalf("code %q state %q", code, state)
		}
		tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := prov.Verifier(&oidc.Config{ClientID: "rampart"}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			User   string   `json:"preferred_username"`
			Groups []string `json:"groups"`
		}
		if err := idt.Claims(&claims); err != nil || claims.User != "alice" || len(claims.Groups) != 2 {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		// A code works once.
		if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("a code was exchanged twice")
		}
	})
	t.Run("fail/wrong-verifier", func(t *testing.T) {
		code, _, _ := codeFlow(t, e, cfg, "bob", bobPassword, oauth2.S256ChallengeOption(verifier))
		_, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("exchange with another verifier: %v, want invalid_grant", err)
		}
	})
	t.Run("fail/no-pkce", func(t *testing.T) {
		_, _, errCode := codeFlow(t, e, cfg, "bob", bobPassword)
		if errCode != "invalid_request" {
			t.Fatalf("without PKCE: error %q, want invalid_request", errCode)
		}
	})
	t.Run("fail/unregistered-redirect", func(t *testing.T) {
		other := *cfg
		other.RedirectURL = "https://evil.example/cb"
		resp, err := http.Get(other.AuthCodeURL("x", oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Request.URL.Host == "evil.example" || resp.StatusCode == http.StatusOK {
			t.Fatalf("an unregistered redirect URI was followed: %s %d", resp.Request.URL, resp.StatusCode)
		}
	})
}
