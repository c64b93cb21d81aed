package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Values of OIDCConfig.OfflineAccess.
const (
	OfflineAuto = "auto"
	OfflineOn   = "on"
	OfflineOff  = "off"
)

// Secret is a credential (a refresh token). Printed by fmt, slog or
// encoding/json it shows as [redacted]; Reveal is the one way to the text.
type Secret string

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }

// Reveal is the token's text, for the IdP and the sealer only.
func (s Secret) Reveal() string { return string(s) }

// wantsOffline decides whether sign-ins ask for offline_access.
func (p *Provider) wantsOffline(prov *oidc.Provider) bool {
	switch p.cfg.OfflineAccess {
	case OfflineOn:
		return true
	case OfflineOff:
		return false
	}
	var meta struct {
		Scopes []string `json:"scopes_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return false
	}
	return slices.Contains(meta.Scopes, oidc.ScopeOfflineAccess)
}

// OffersRefresh reports whether sign-ins ask the IdP for refresh tokens. It
// is false until discovery has succeeded.
func (p *Provider) OffersRefresh() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offline
}

// RefreshKind says what a refused or failed refresh means.
type RefreshKind int

const (
	// RefreshUnverified: the IdP could not be asked, or its answer could
	// not be verified (unreachable, 5xx, a bad ID token, the bastion's
	// client refused): the person is neither confirmed nor refused.
	RefreshUnverified RefreshKind = iota
	// RefreshRefused: the IdP no longer vouches for the person
	// (invalid_grant: the account is inactive or gone, the token revoked),
	// or its ID token names someone else.
	RefreshRefused
	// RefreshRateLimited: the IdP answered 429; try later.
	RefreshRateLimited
)

// RefreshError is a refresh that did not confirm the person. Reason is the
// IdP's answer, fit for the audit log and the IdP session record; it never
// holds a token.
type RefreshError struct {
	Kind       RefreshKind
	Reason     string
	RetryAfter time.Duration // from a 429's Retry-After, 0 without
	err        error
}

func (e *RefreshError) Error() string {
	return "refresh: " + e.Reason
}

func (e *RefreshError) Unwrap() error { return e.err }

// Refreshed is what a refresh that confirmed the person gives back.
type Refreshed struct {
	// Identity is the refreshed ID token's, nil when the IdP sent none with
	// the refresh (OIDC lets it): the person is confirmed, their groups
	// stay as they were.
	Identity *Identity
	// RefreshToken is the token to keep: a new one when the IdP rotated it,
	// else the one used.
	RefreshToken Secret
}

// maxReason bounds the IdP's answer kept in the audit log and records.
const maxReason = 200

// Refresh redeems a refresh token of the person subject at the IdP's token
// endpoint. A refreshed ID token must verify and name the same subject.
func (p *Provider) Refresh(ctx context.Context, token Secret, subject string) (*Refreshed, error) {
	oc, verifier, err := p.discover(ctx)
	if err != nil {
		return nil, &RefreshError{Kind: RefreshUnverified, Reason: "identity provider discovery failed", err: err}
	}
	// An expired token makes the source redeem the refresh token at once.
	src := oc.TokenSource(oidc.ClientContext(ctx, p.client), &oauth2.Token{RefreshToken: token.Reveal(), Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, refreshError(err)
	}
	out := &Refreshed{RefreshToken: Secret(tok.RefreshToken)}
	if out.RefreshToken == "" {
		out.RefreshToken = token
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return out, nil
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		p.logger.Warn("refreshed ID token refused", "issuer", p.cfg.Issuer, "user_id", subject, "err", err)
		return nil, &RefreshError{Kind: RefreshUnverified, Reason: "the refreshed ID token could not be verified", err: err}
	}
	if idt.Subject != subject {
		return nil, &RefreshError{Kind: RefreshRefused, Reason: "the refreshed ID token names another subject"}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, &RefreshError{Kind: RefreshUnverified, Reason: "the refreshed ID token's claims are unreadable", err: err}
	}
	id, err := p.cfg.Claims.Map(idt.Issuer, idt.Subject, claims, p.logger)
	if err != nil {
		return nil, &RefreshError{Kind: RefreshUnverified, Reason: "the refreshed ID token's claims are unusable", err: err}
	}
	out.Identity = id
	return out, nil
}

// refreshError classifies a failed token request.
func refreshError(err error) *RefreshError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		answer := re.ErrorCode
		if re.ErrorDescription != "" {
			answer += ": " + re.ErrorDescription
		}
		answer = raftstore.BoundText(answer, maxReason)
		switch {
		case status == http.StatusTooManyRequests:
			return &RefreshError{Kind: RefreshRateLimited, Reason: "rate limited by the identity provider", RetryAfter: retryAfter(re.Response), err: err}
		case re.ErrorCode == "invalid_grant":
			return &RefreshError{Kind: RefreshRefused, Reason: answer, err: err}
		case answer != "":
			return &RefreshError{Kind: RefreshUnverified, Reason: "identity provider answered " + answer, err: err}
		}
		return &RefreshError{Kind: RefreshUnverified, Reason: "identity provider answered HTTP " + strconv.Itoa(status), err: err}
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return &RefreshError{Kind: RefreshUnverified, Reason: "the identity provider cannot be reached", err: err}
	}
	return &RefreshError{Kind: RefreshUnverified, Reason: "the identity provider's answer is not an OAuth answer", err: err}
}

// retryAfter reads a Retry-After header given in seconds (0 without one).
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}
