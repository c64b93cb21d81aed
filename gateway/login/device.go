package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors of the device flow. Each carries a message fit to show the person
// at the SSH prompt; the detail goes to the log.
var (
	ErrIdPUnavailable = errors.New("the identity provider cannot be reached; try again shortly")
	ErrDenied         = errors.New("sign-in was denied at the identity provider")
	ErrCodeExpired    = errors.New("the sign-in code expired before it was approved; connect again for a new one")
	ErrBadToken       = errors.New("the identity provider's answer could not be verified; sign-in refused")
	ErrBadIdentity    = errors.New("your identity cannot be used here")
)

// OIDCConfig configures the identity provider.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	Claims       ClaimMapping
	// HTTPClient talks to the IdP (default: 10s timeout per request).
	HTTPClient *http.Client
}

// Provider runs the device flow against one OIDC identity provider. It
// discovers the provider lazily and again after failures, so a node starts
// (and serves bound keys) while its IdP is down.
type Provider struct {
	cfg    OIDCConfig
	logger *slog.Logger
	client *http.Client

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// NewProvider returns a Provider; it makes no request yet.
func NewProvider(cfg OIDCConfig, logger *slog.Logger) *Provider {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}
	}
	cfg.Claims = cfg.Claims.withDefaults()
	return &Provider{cfg: cfg, logger: logger, client: client}
}

// discover fetches the provider's metadata once it succeeds.
func (p *Provider) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oauth != nil {
		return p.oauth, p.verifier, nil
	}
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.cfg.Issuer)
	if err != nil {
		p.logger.Error("OIDC discovery failed", "issuer", p.cfg.Issuer, "err", err)
		return nil, nil, ErrIdPUnavailable
	}
	ep := prov.Endpoint()
	if ep.DeviceAuthURL == "" {
		p.logger.Error("identity provider does not advertise a device authorization endpoint", "issuer", p.cfg.Issuer)
		return nil, nil, ErrIdPUnavailable
	}
	// An explicit AuthStyle: with AutoDetect, x/oauth2 retries every failed
	// poll (authorization_pending included) with the other style.
	if p.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	} else {
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: ep, Scopes: p.cfg.Scopes}
	p.verifier = prov.VerifierContext(oidc.ClientContext(context.Background(), p.client), &oidc.Config{ClientID: p.cfg.ClientID})
	return p.oauth, p.verifier, nil
}

// DeviceAuth is one started device authorization.
type DeviceAuth struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	Expiry                  time.Time
	resp                    *oauth2.DeviceAuthResponse
}

// Start asks the IdP for a device code.
func (p *Provider) Start(ctx context.Context) (*DeviceAuth, error) {
	oc, _, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := oc.DeviceAuth(oidc.ClientContext(ctx, p.client))
	if err != nil {
		p.logger.Error("device authorization request failed", "issuer", p.cfg.Issuer, "err", err)
		return nil, ErrIdPUnavailable
	}
	if resp.UserCode == "" || resp.VerificationURI == "" {
		p.logger.Error("device authorization response lacks user code or verification URI", "issuer", p.cfg.Issuer)
		return nil, ErrIdPUnavailable
	}
	complete := resp.VerificationURIComplete
	if complete == "" {
		complete = resp.VerificationURI
	}
	return &DeviceAuth{UserCode: resp.UserCode, VerificationURI: resp.VerificationURI, VerificationURIComplete: complete, Expiry: resp.Expiry, resp: resp}, nil
}

// Wait polls the IdP (honouring interval and slow_down) until the person
// approves, denies or the code expires, then verifies the ID token and maps
// its claims.
func (p *Provider) Wait(ctx context.Context, da *DeviceAuth) (*Identity, error) {
	oc, verifier, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := oc.DeviceAccessToken(oidc.ClientContext(ctx, p.client), da.resp)
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "access_denied":
			return nil, ErrDenied
		case errors.As(err, &re) && re.ErrorCode == "expired_token",
			errors.Is(err, context.DeadlineExceeded) && !da.Expiry.IsZero() && !time.Now().Before(da.Expiry):
			return nil, ErrCodeExpired
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		p.logger.Error("device token poll failed", "issuer", p.cfg.Issuer, "err", err)
		return nil, ErrIdPUnavailable
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		p.logger.Error("token response has no id_token", "issuer", p.cfg.Issuer)
		return nil, ErrBadToken
	}
	return p.verify(ctx, verifier, raw)
}

// verify checks the ID token's signature, issuer, audience and expiry, then
// maps its claims.
func (p *Provider) verify(ctx context.Context, verifier *oidc.IDTokenVerifier, raw string) (*Identity, error) {
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		p.logger.Warn("ID token refused", "issuer", p.cfg.Issuer, "err", err)
		return nil, ErrBadToken
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		p.logger.Warn("ID token claims unreadable", "err", err)
		return nil, ErrBadToken
	}
	id, err := p.cfg.Claims.Map(idt.Issuer, idt.Subject, claims, p.logger)
	if err != nil {
		p.logger.Warn("ID token claims unusable", "subject", idt.Subject, "err", err)
		return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	return id, nil
}
