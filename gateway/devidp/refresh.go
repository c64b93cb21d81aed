package devidp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Refresh tokens and the users page's changes. A device sign-in that asks
// for offline_access gets a refresh token; redeeming it rotates it (the old
// one stops working) and issues an ID token with the user's current groups.
// Deactivating a user (the users page) drops their tokens and refuses their
// sign-ins and refreshes (invalid_grant), as a real IdP does.

// refreshToken is one live refresh token. Guarded by storage.mu.
type refreshToken struct {
	token    string
	clientID string
	subject  string
	audience []string
	scopes   []string
	amr      []string
	authTime time.Time
	expires  time.Time
}

// refreshRequest is what a refresh token stands for, as op asks for it.
type refreshRequest struct {
	t      refreshToken
	scopes []string
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string                 { return r.t.amr }
func (r *refreshRequest) GetAudience() []string            { return r.t.audience }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.t.authTime }
func (r *refreshRequest) GetClientID() string              { return r.t.clientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.t.subject }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// errDeactivated refuses a deactivated user's refresh (op answers
// invalid_grant).
var errDeactivated = errors.New("the user is deactivated")

// CreateAccessAndRefreshTokens issues an access token and a new refresh
// token. A refresh (currentRefreshToken set) rotates: the token redeemed
// stops working.
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	if s.isDeactivated(req.GetSubject()) {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the user is deactivated")
	}
	accessID, exp, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	rt := refreshToken{
		token: randomToken(32), subject: req.GetSubject(), audience: slices.Clone(req.GetAudience()),
		scopes: slices.Clone(req.GetScopes()), expires: time.Now().Add(refreshTokenTTL),
	}
	switch r := req.(type) {
	case *op.DeviceAuthorizationState:
		rt.clientID, rt.amr, rt.authTime = r.ClientID, slices.Clone(r.AMR), r.AuthTime
	case *refreshRequest:
		rt.clientID, rt.amr, rt.authTime = r.t.clientID, r.t.amr, r.t.authTime
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens come only with the device grant")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if currentRefreshToken != "" {
		if _, ok := s.refresh[currentRefreshToken]; !ok {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
		}
		delete(s.refresh, currentRefreshToken)
	}
	if len(s.refresh) >= maxTokens {
		now := time.Now()
		for k, old := range s.refresh {
			if now.After(old.expires) {
				delete(s.refresh, k)
			}
		}
		if len(s.refresh) >= maxTokens {
			return "", "", time.Time{}, errors.New("too many live refresh tokens; try again later")
		}
	}
	s.refresh[rt.token] = &rt
	s.saveLocked()
	return accessID, rt.token, exp, nil
}

// TokenRequestByRefreshToken finds what a refresh token stands for; op
// answers any error with invalid_grant.
func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	switch {
	case !ok || time.Now().After(rt.expires):
		return nil, errors.New("unknown or expired refresh token")
	case s.deactivated[rt.subject]:
		return nil, errDeactivated
	}
	return &refreshRequest{t: *rt, scopes: slices.Clone(rt.scopes)}, nil
}

// GetRefreshTokenInfo serves token revocation: the user and the token's id
// (the token itself).
func (s *storage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || rt.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, token, nil
}

// isDeactivated reports whether the users page deactivated subject.
func (s *storage) isDeactivated(subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deactivated[subject]
}

// userGroups are u's groups: the users page's, else the configured ones.
func (s *storage) userGroups(u *user) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.groups[u.subject]; ok {
		return slices.Clone(g)
	}
	return slices.Clone(u.Groups)
}

// setActive deactivates a user (dropping every token they hold) or
// activates them again.
func (s *storage) setActive(u *user, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.saveLocked()
	if active {
		delete(s.deactivated, u.subject)
		return
	}
	s.deactivated[u.subject] = true
	for k, t := range s.refresh {
		if t.subject == u.subject {
			delete(s.refresh, k)
		}
	}
	for k, t := range s.tokens {
		if t.subject == u.subject {
			delete(s.tokens, k)
		}
	}
}

// setGroups replaces u's groups (empty names dropped).
func (s *storage) setGroups(u *user, groups []string) {
	kept := []string{}
	for _, g := range groups {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(kept, g) {
			kept = append(kept, g)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[u.subject] = kept
	s.saveLocked()
}

// lookupUser finds a configured user by name.
func (s *storage) lookupUser(username string) (*user, bool) {
	u, ok := s.users[strings.ToLower(username)]
	return u, ok
}
