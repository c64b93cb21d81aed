package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Cookies. Both are __Host- cookies (Secure, Path=/, no Domain), so no
// other service on the same host name over plain HTTP (the dev IdP, a
// metrics endpoint) and no sibling domain can plant one. The session cookie
// is SameSite=Strict; the sign-in cookie (the sealed state, PKCE verifier
// and nonce, signin.go) must come back on the IdP's cross-site redirect, so
// it is Lax and lives ten minutes.
const (
	sessionCookie = "__Host-rampart_console"
	signInCookie  = "__Host-rampart_console_signin"
	signInTTL     = 10 * time.Minute
	maxSessions   = 10_000
)

// role is what a page asks of a signed-in person (roles.go).
type role int

const (
	// roleAny: anyone signed in (sign out).
	roleAny role = iota
	// roleAuditor: sessions, recordings, search, share links.
	roleAuditor
	// roleAdmin: live sessions, and ending one.
	roleAdmin
	// roleDecider: the access requests page and its decisions.
	roleDecider
)

// consoleSession is one signed-in browser. Its roles are decided again on
// every request (roles.go), from the ID token's groups at sign-in and the
// person's Rampart account as it is then; a decision on an access request
// is checked again by gateway/control from the replicated state.
type consoleSession struct {
	id   string
	User string
	// Subject is the ID token's subject: it finds the person's Rampart
	// account on every request and when they decide an access request.
	Subject string
	// Groups are the ID token's groups at sign-in.
	Groups []string
	// UserID is the id of their Rampart account ("" without one), as of
	// this request.
	UserID string
	// Admin implies Auditor. Approver: an approver of some project's
	// access requests. All three as of this request.
	Admin, Auditor, Approver bool
	csrf                     string
	started                  time.Time
	lastSeen                 time.Time
}

// authenticator holds the OIDC client and the console's sessions.
type authenticator struct {
	cfg Config
	now func() time.Time
	log *slog.Logger

	// sealer seals sign-ins under way into their cookie: the server keeps
	// none.
	sealer *signInSealer

	mu       sync.Mutex
	provider *oidc.Provider
	sessions map[string]*consoleSession
}

func newAuthenticator(cfg Config, signInKey []byte, now func() time.Time, log *slog.Logger) *authenticator {
	return &authenticator{cfg: cfg, now: now, log: log, sealer: newSignInSealer(signInKey), sessions: map[string]*consoleSession{}}
}

func (a *authenticator) httpContext(ctx context.Context) context.Context {
	if a.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, a.cfg.HTTPClient)
	}
	return ctx
}

// oauth returns the OAuth client and ID token verifier, discovering the
// issuer on first use (the dev IdP may start after the API).
func (a *authenticator) oauth(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	a.mu.Lock()
	p := a.provider
	a.mu.Unlock()
	if p == nil {
		var err error
		if p, err = oidc.NewProvider(a.httpContext(ctx), a.cfg.Issuer); err != nil {
			return nil, nil, fmt.Errorf("discover %s: %w", a.cfg.Issuer, err)
		}
		a.mu.Lock()
		a.provider = p
		a.mu.Unlock()
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range a.cfg.Scopes {
		if !slices.Contains(scopes, s) && s != oidc.ScopeOfflineAccess {
			scopes = append(scopes, s)
		}
	}
	ep := p.Endpoint()
	// Set explicitly: with AuthStyleAutoDetect a failed exchange is sent twice.
	ep.AuthStyle = oauth2.AuthStyleInParams
	if a.cfg.ClientSecret != "" {
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	oc := &oauth2.Config{ClientID: a.cfg.ClientID, ClientSecret: a.cfg.ClientSecret, Endpoint: ep, RedirectURL: a.cfg.RedirectURL, Scopes: scopes}
	return oc, p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID}), nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login is GET /console/login: off to the IdP with state, nonce and a PKCE
// challenge.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	oc, _, err := c.auth.oauth(r.Context())
	if err != nil {
		c.log.Warn("console sign-in: identity provider unreachable", "err", err)
		c.fail(w, r, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a minute.")
		return
	}
	si := signIn{State: randomString(24), Verifier: oauth2.GenerateVerifier(), Nonce: randomString(24), Expires: c.now().Add(signInTTL).Unix()}
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: c.auth.sealer.seal(si), Path: "/", MaxAge: int(signInTTL / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(si.State, oauth2.S256ChallengeOption(si.Verifier), oidc.Nonce(si.Nonce)), http.StatusSeeOther)
}

// callback is GET /console/callback: check state, exchange the code with
// the verifier, verify the ID token and nonce, check the groups, start a
// session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(signInCookie)
	var si *signIn
	if err == nil {
		si, _ = c.auth.sealer.open(ck.Value, c.now())
	}
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	switch {
	case si == nil:
		c.fail(w, r, http.StatusBadRequest, "This sign-in expired or was started in another browser. Sign in again.")
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(si.State)) != 1:
		c.fail(w, r, http.StatusBadRequest, "This sign-in did not match the one this browser started. Sign in again.")
		return
	case q.Get("error") != "":
		c.log.Info("console sign-in refused by the identity provider", "error", q.Get("error"))
		c.fail(w, r, http.StatusForbidden, "The identity provider did not sign you in.")
		return
	}
	oc, verifier, err := c.auth.oauth(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a minute.")
		return
	}
	ctx := c.auth.httpContext(r.Context())
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(si.Verifier))
	if err != nil {
		c.log.Warn("console sign-in: code exchange failed", "err", err)
		c.fail(w, r, http.StatusBadGateway, "The identity provider did not accept the sign-in. Sign in again.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(si.Nonce)) != 1 {
		c.log.Warn("console sign-in: ID token refused", "err", err)
		c.fail(w, r, http.StatusBadGateway, "The identity provider's answer could not be verified. Sign in again.")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		c.fail(w, r, http.StatusBadGateway, "The identity provider's answer could not be read. Sign in again.")
		return
	}
	user, _ := claimPath(claims, c.cfg.UsernameClaim).(string)
	if user == "" {
		user = idt.Subject
	}
	groups := stringList(claimPath(claims, c.cfg.GroupsClaim))
	rs, err := c.rolesAt(idt.Subject, groups)
	fields := map[string]string{"source": r.RemoteAddr, "sub": idt.Subject}
	if rs.UserID != "" {
		fields["user_id"] = rs.UserID
	}
	switch {
	case errors.Is(err, errInactive):
		fields["reason"] = "account_inactive"
		_ = c.audit(r.Context(), EventSignInRefused, user, fields)
		c.render(w, http.StatusForbidden, "error", view{Title: "Not allowed",
			Data: fmt.Sprintf("You are signed in as %s, but your Rampart account is not active.", user)})
		return
	case err != nil:
		c.log.Warn("console sign-in: the person's account cannot be read", "user", user, "err", err)
		c.fail(w, r, http.StatusServiceUnavailable, "Your access cannot be checked right now. Try again in a minute.")
		return
	case !rs.Auditor && !rs.Approver:
		fields["reason"] = "no_role"
		msg := fmt.Sprintf("You are signed in as %s, but the console is only for members of the %s group, and for approvers of access requests.", user, c.cfg.AuditorGroup)
		if rs.Unconfirmed {
			fields["reason"] = "groups_unconfirmed"
			msg = fmt.Sprintf("You are signed in as %s. Your identity provider names a console group, but your Rampart account's groups do not: sign in once with ssh so that Rampart learns them, then try again.", user)
		}
		_ = c.audit(r.Context(), EventSignInRefused, user, fields)
		c.render(w, http.StatusForbidden, "error", view{Title: "Not allowed", Data: msg})
		return
	}
	rs.auditFields(fields)
	if err := c.audit(r.Context(), EventSignIn, user, fields); err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The sign-in could not be recorded in the audit log. Try again in a minute.")
		return
	}
	s, ok := c.auth.start(user, idt.Subject, groups, rs)
	if !ok {
		c.fail(w, r, http.StatusServiceUnavailable, "Too many people are signed in. Try again in a minute.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	// A page, not a redirect: a Strict cookie is not sent on a redirect
	// chain that began at the IdP, but is on a navigation this page starts.
	c.render(w, http.StatusOK, "continue", view{Title: "Signed in", Data: s.Home()})
}

// start starts the session of a person the sign-in found rs of.
func (a *authenticator) start(user, subject string, groups []string, rs standing) (*consoleSession, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= maxSessions {
		for id, s := range a.sessions {
			if a.expired(s, now) {
				delete(a.sessions, id)
			}
		}
		if len(a.sessions) >= maxSessions {
			return nil, false
		}
	}
	s := &consoleSession{id: randomString(32), User: user, Subject: subject, Groups: slices.Clone(groups), csrf: randomString(32), started: now, lastSeen: now}
	a.sessions[s.id] = s
	cp := *s
	cp.setStanding(rs)
	return &cp, true
}

// end ends the session of id.
func (a *authenticator) end(id string) {
	a.mu.Lock()
	delete(a.sessions, id)
	a.mu.Unlock()
}

func (a *authenticator) expired(s *consoleSession, now time.Time) bool {
	return now.Sub(s.lastSeen) > a.cfg.IdleTimeout || now.Sub(s.started) > a.cfg.MaxSession
}

// current returns the request's live session (touching it), or nil. Its
// roles are not set: Console.session decides them.
func (a *authenticator) current(r *http.Request) (*consoleSession, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[ck.Value]
	if !ok {
		return nil, false
	}
	if a.expired(s, now) {
		delete(a.sessions, ck.Value)
		return nil, false
	}
	s.lastSeen = now
	cp := *s
	return &cp, true
}

// signedIn admits a signed-in person whose roles allow need; a state change
// (any method but GET and HEAD) must also carry the session's CSRF token
// and, when the browser sends one, this origin's Origin header.
func (c *Console) signedIn(need role, h func(http.ResponseWriter, *http.Request, *consoleSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, status, refused := c.session(r)
		if s == nil {
			if refused != "" {
				c.fail(w, r, status, refused)
				return
			}
			if r.Method == http.MethodGet {
				c.render(w, http.StatusUnauthorized, "signin", view{Title: "Sign in"})
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "Your console session ended. Sign in again.")
			return
		}
		if msg := s.refusal(need); msg != "" {
			c.log.Info("console page refused to the person's role", "user", s.User, "path", r.URL.Path)
			c.fail(w, r, http.StatusForbidden, msg)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, http.StatusBadRequest, "That form could not be read.")
				return
			}
			origin := r.Header.Get("Origin")
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 ||
				(origin != "" && origin != "null" && !strings.EqualFold(origin, "https://"+r.Host)) {
				c.log.Warn("console form refused: CSRF check failed", "user", s.User, "path", r.URL.Path)
				c.fail(w, r, http.StatusForbidden, "That form did not come from this console. Reload the page and try again.")
				return
			}
		}
		h(w, r.WithContext(withSession(r.Context(), s)), s)
	}
}

// logout is POST /console/logout.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *consoleSession) {
	c.auth.end(s.id)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	c.render(w, http.StatusOK, "signin", view{Title: "Signed out"})
}

// claimPath reads a dotted claim name ("rampart.groups").
func claimPath(claims map[string]any, path string) any {
	var cur any = claims
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func stringList(v any) []string {
	switch v := v.(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{v}
	}
	return nil
}
