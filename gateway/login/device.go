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
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors of the device flow. Each carries a message fit to show the person
// at the SSH prompt; the detail goes to the log. ErrIdPUnavailable is only
// for an IdP that did not answer (network, DNS, TLS, timeout): an IdP that
// answered with an error gets the message for that error.
var (
	ErrIdPUnavailable = errors.New("the identity provider cannot be reached; try again shortly")
	ErrDenied         = errors.New("sign-in was denied at the identity provider")
	ErrCodeExpired    = errors.New("the sign-in code expired before it was approved; connect again for a new one")
	ErrCodeRejected   = errors.New("the identity provider no longer accepts this sign-in code; connect again for a new one")
	ErrIdPFailed      = errors.New("the identity provider reported an internal error; try again shortly")
	ErrIdPRefused     = errors.New("the identity provider refused this bastion's request; ask an administrator to check the bastion's log")
	ErrBadToken       = errors.New("the identity provider's answer could not be verified; sign-in refused")
	ErrBadIdentity    = errors.New("your identity cannot be used here")
)

// idpError turns what an IdP endpoint's request failed with into the
// sentinel the person is shown.
func idpError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "access_denied":
			return ErrDenied
		case "expired_token":
			return ErrCodeExpired
		case "invalid_grant":
			return ErrCodeRejected
		case "server_error", "temporarily_unavailable":
			return ErrIdPFailed
		case "":
			// Not an OAuth error body: an error page of the IdP or of a
			// proxy in front of it.
			if re.Response != nil && re.Response.StatusCode >= 500 {
				return ErrIdPFailed
			}
		}
		// invalid_client, unauthorized_client, invalid_request,
		// unsupported_grant_type, invalid_scope, ...: the bastion's client
		// registration or configuration is wrong.
		return ErrIdPRefused
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return ErrIdPUnavailable
	}
	// It answered, with something that is not an OAuth answer.
	return ErrIdPFailed
}

// OIDCConfig configures the identity provider.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	Claims       ClaimMapping
	// OfflineAccess says whether sign-ins ask for a refresh token (the
	// offline_access scope), which re-validation uses: OfflineAuto (the
	// default, "") when the discovery document lists the scope, OfflineOn
	// always, OfflineOff never.
	OfflineAccess string
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
	// offline: sign-ins ask for a refresh token (set by discover).
	offline bool
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
		return nil, nil, idpError(err)
	}
	ep := prov.Endpoint()
	if ep.DeviceAuthURL == "" {
		p.logger.Error("identity provider does not advertise a device authorization endpoint", "issuer", p.cfg.Issuer)
		return nil, nil, ErrIdPRefused
	}
	// An explicit AuthStyle: with AutoDetect, x/oauth2 retries every failed
	// poll (authorization_pending included) with the other style.
	if p.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	} else {
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	scopes := p.cfg.Scopes
	if p.offline = p.wantsOffline(prov); p.offline && !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		scopes = append(slices.Clone(scopes), oidc.ScopeOfflineAccess)
	}
	p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: ep, Scopes: scopes}
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
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.logger.Error("device authorization request failed", "issuer", p.cfg.Issuer, "err", err)
		return nil, idpError(err)
	}
	if resp.UserCode == "" || resp.VerificationURI == "" {
		p.logger.Error("device authorization response lacks user code or verification URI", "issuer", p.cfg.Issuer)
		return nil, ErrIdPFailed
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
		case errors.As(err, &re):
		case errors.Is(err, context.DeadlineExceeded) && !da.Expiry.IsZero() && !time.Now().Before(da.Expiry):
			return nil, ErrCodeExpired
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		mapped := idpError(err)
		if mapped != ErrDenied && mapped != ErrCodeExpired {
			p.logger.Error("device token poll failed", "issuer", p.cfg.Issuer, "err", err)
		}
		return nil, mapped
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		p.logger.Error("token response has no id_token", "issuer", p.cfg.Issuer)
		return nil, ErrBadToken
	}
	id, err := p.verify(ctx, verifier, raw)
	if err != nil {
		return nil, err
	}
	id.RefreshToken, id.RefreshAsked = Secret(tok.RefreshToken), p.OffersRefresh()
	return id, nil
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
