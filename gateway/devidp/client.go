package devidp

import (
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is a configured Client as zitadel's op.Client.
type client struct {
	Client
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.ID }
func (c *client) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }

// ApplicationType decides whether op demands client authentication on the
// token endpoint: web (confidential) when there is a secret, native
// (public) when there is none.
func (c *client) ApplicationType() op.ApplicationType {
	if c.Secret != "" {
		return op.ApplicationTypeWeb
	}
	return op.ApplicationTypeNative
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.Secret != "" {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodNone
}

// ResponseTypes: the authorization-code flow (with PKCE, authcode.go) for
// clients that registered redirect URIs.
func (c *client) ResponseTypes() []oidc.ResponseType {
	if len(c.Client.RedirectURIs) == 0 {
		return nil
	}
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	g := []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
	if len(c.Client.RedirectURIs) > 0 {
		g = append(g, oidc.GrantTypeCode)
	}
	return g
}

// LoginURL is where op sends the browser of an authorization request.
func (c *client) LoginURL(id string) string           { return signinURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return idTokenTTL }
func (c *client) DevMode() bool                       { return false }
func (c *client) ClockSkew() time.Duration            { return 0 }
func (c *client) IsScopeAllowed(scope string) bool    { return scope == ScopeGroups }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IDTokenUserinfoClaimsAssertion must be true: whenever an access token is
// issued alongside the ID token (always, in the device grant), op strips the
// profile and email scopes before asking for ID token claims unless the
// client asserts userinfo claims in the ID token.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
