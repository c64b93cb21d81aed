package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Token lifetimes. Access and ID tokens are short: rampartd verifies the ID
// token at sign-in and keeps its own device binding. A refresh token (asked
// for with offline_access) lives until it is used, which rotates it, or its
// user is deactivated; refreshTokenTTL only bounds an unused one.
const (
	accessTokenTTL  = 10 * time.Minute
	idTokenTTL      = 10 * time.Minute
	refreshTokenTTL = 30 * 24 * time.Hour
)

// Caps on in-memory state, so that a script hammering the dev IdP cannot
// grow it without bound.
const (
	maxDeviceCodes = 10_000
	maxTokens      = 10_000
	// expiredGrace keeps an expired device code around so that late polls
	// still hear expired_token rather than access_denied.
	expiredGrace = 10 * time.Minute
)

// storage is the op.Storage (and op.DeviceAuthorizationStorage) of the dev
// IdP. Configuration fields are read-only after newStorage; mu guards the
// maps below it.
type storage struct {
	// logger reports what cannot be saved (persist.go).
	logger  *slog.Logger
	cfg     Config
	clients map[string]*client
	users   map[string]*user // by lower-cased username
	bySub   map[string]*user
	key     signingKey

	mu          sync.Mutex
	deviceCodes map[string]*deviceEntry // by device code
	userCodes   map[string]string       // canonical user code → device code
	tokens      map[string]*accessToken // by token ID
	refresh     map[string]*refreshToken
	// deactivated and groups are the users page's changes, by subject:
	// who may no longer sign in or refresh, and groups that replace the
	// configured ones.
	deactivated map[string]bool
	groups      map[string][]string
	// authRequests are the authorization-code flow's requests, by id
	// (authcode.go).
	authRequests map[string]*authRequest
}

var (
	_ op.Storage                    = (*storage)(nil)
	_ op.DeviceAuthorizationStorage = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest  = (*storage)(nil)
)

type user struct {
	User
	subject string
}

type accessToken struct {
	id       string
	clientID string
	subject  string
	audience []string
	scopes   []string
	expires  time.Time
}

func newStorage(cfg Config) (*storage, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate signing key: %w", err)
	}
	s := &storage{
		cfg:          cfg,
		clients:      map[string]*client{},
		users:        map[string]*user{},
		bySub:        map[string]*user{},
		key:          signingKey{id: randomToken(12), key: k},
		deviceCodes:  map[string]*deviceEntry{},
		userCodes:    map[string]string{},
		tokens:       map[string]*accessToken{},
		refresh:      map[string]*refreshToken{},
		deactivated:  map[string]bool{},
		groups:       map[string][]string{},
		authRequests: map[string]*authRequest{},
	}
	for _, c := range cfg.Clients {
		s.clients[c.ID] = &client{Client: c}
	}
	for _, u := range cfg.Users {
		su := &user{User: u, subject: subjectFor(u.Username)}
		s.users[strings.ToLower(u.Username)] = su
		s.bySub[su.subject] = su
	}
	return s, nil
}

// subjectFor derives a stable, opaque subject from a user name, so that a
// restarted dev IdP keeps issuing the same sub to the same person.
func subjectFor(username string) string {
	h := sha256.Sum256([]byte("rampart-devidp-subject:" + username))
	return "dev-" + hex.EncodeToString(h[:12])
}

// checkPassword returns the user when username and password match. It
// compares fixed-length digests in constant time and does the same work for
// an unknown user, so timing tells nothing about which part was wrong.
func (s *storage) checkPassword(username, password string) (*user, bool) {
	u, found := s.users[strings.ToLower(username)]
	want := "\x00no such user"
	if found {
		want = u.Password
	}
	got := sha256.Sum256([]byte(password))
	exp := sha256.Sum256([]byte(want))
	ok := subtle.ConstantTimeCompare(got[:], exp[:]) == 1
	if !found || !ok {
		return nil, false
	}
	return u, true
}

// --- clients and client authentication ---

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	c, ok := s.clients[clientID]
	if !ok {
		// An oidc.Error keeps zitadel from answering an unknown client with
		// a 500 server_error.
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	c, ok := s.clients[clientID]
	want := "\x00no such client"
	if ok && c.Secret != "" {
		want = c.Secret
	}
	got := sha256.Sum256([]byte(clientSecret))
	exp := sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(got[:], exp[:]) != 1 || !ok || c.Secret == "" {
		return errors.New("client authentication failed")
	}
	return nil
}

// --- tokens ---

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	var clientID string
	if r, ok := req.(interface{ GetClientID() string }); ok {
		clientID = r.GetClientID()
	}
	t := &accessToken{
		id:       randomToken(16),
		clientID: clientID,
		subject:  req.GetSubject(),
		audience: slices.Clone(req.GetAudience()),
		scopes:   slices.Clone(req.GetScopes()),
		expires:  time.Now().Add(accessTokenTTL),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) >= maxTokens {
		now := time.Now()
		for id, old := range s.tokens {
			if now.After(old.expires) {
				delete(s.tokens, id)
			}
		}
		if len(s.tokens) >= maxTokens {
			return "", time.Time{}, errors.New("too many live tokens; try again later")
		}
	}
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	for id, t := range s.refresh {
		if t.subject == userID && t.clientID == clientID {
			delete(s.refresh, id)
		}
	}
	s.saveLocked()
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refresh, tokenOrID)
		s.saveLocked()
		return nil
	}
	t, ok := s.tokens[tokenOrID]
	if !ok {
		return nil // unknown tokens are already as revoked as they get
	}
	if t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	delete(s.tokens, tokenOrID)
	return nil
}

func (s *storage) liveToken(tokenID, subject string) (*accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || t.subject != subject || time.Now().After(t.expires) {
		return nil, errors.New("token invalid or expired")
	}
	return t, nil
}

// --- claims ---

// SetUserinfoFromScopes is deprecated in op and intentionally empty;
// SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims. op calls it only with
// the scopes that survive client.IDTokenUserinfoClaimsAssertion (see there).
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, req.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(tokenID, subject)
	if err != nil {
		return err
	}
	return s.setUserinfo(info, t.subject, t.scopes)
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := s.liveToken(tokenID, subject)
	if err != nil {
		return err
	}
	if !slices.Contains(t.audience, clientID) {
		return errors.New("token is not for this client")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, t.subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

// setUserinfo releases claims by scope: profile → name and the username
// claim, email → email and email_verified, groups → the groups claim.
func (s *storage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	u, ok := s.bySub[subject]
	if !ok {
		return errors.New("unknown user")
	}
	info.Subject = u.subject
	claims := map[string]any{}
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeProfile:
			info.Name = u.Name
			login := u.Username
			if u.UsernameClaim != "" {
				login = u.UsernameClaim
			}
			setClaimPath(claims, s.cfg.ClaimNames.Username, login)
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.EmailVerified = true
		case ScopeGroups:
			groups := s.userGroups(u)
			if groups == nil {
				groups = []string{} // [] rather than null: "no groups" is an answer
			}
			setClaimPath(claims, s.cfg.ClaimNames.Groups, groups)
		}
	}
	for k, v := range claims {
		info.AppendClaims(k, v)
	}
	return nil
}

// setClaimPath stores v under a dotted path, creating nested objects.
// Config validation guarantees the two configured paths never overlap.
func setClaimPath(claims map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := claims
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// --- JWT profile grant: not offered ---

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grant is not supported")
}

// --- keys ---

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return &s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{&s.key}}, nil
}

func (s *storage) Health(context.Context) error { return nil }

// signingKey is the RSA key made at start; it never leaves memory.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }
