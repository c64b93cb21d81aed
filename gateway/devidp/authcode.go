package devidp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The authorization-code flow, for browser sign-ins such as the console's:
// op parses and validates /authorize (client, redirect URI, PKCE), stores
// the request here, sends the browser to signinPath, where the person signs
// in; then op's /authorize/callback issues the code, and /oauth/token
// exchanges it (checking the PKCE verifier against the stored challenge).

// signinPath is the password page of an authorization request. It lives
// under devicePath so that the pages' session cookie reaches it.
const signinPath = "/device/signin"

// authRequestTTL bounds how long a person may take to sign in, and how long
// an issued code may wait to be exchanged.
const authRequestTTL = 10 * time.Minute

// maxAuthRequests caps pending authorization requests.
const maxAuthRequests = 10_000

// authRequest is one pending or signed-in authorization request. Guarded by
// storage.mu once stored.
type authRequest struct {
	id          string
	clientID    string
	redirectURI string
	state       string
	nonce       string
	scopes      []string
	challenge   *oidc.CodeChallenge
	respType    oidc.ResponseType
	respMode    oidc.ResponseMode
	expires     time.Time

	code     string
	subject  string
	authTime time.Time
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.respType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.respMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.subject != "" }

// copy returns a snapshot op can read without the lock.
func (a *authRequest) copy() *authRequest {
	c := *a
	c.scopes = slices.Clone(a.scopes)
	return &c
}

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" {
		// Every client here is a browser page or a native app: PKCE is not
		// optional (RFC 9700, section 2.1.1).
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge is required (PKCE)")
	}
	if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	a := &authRequest{
		id: randomToken(24), clientID: req.ClientID, redirectURI: req.RedirectURI, state: req.State, nonce: req.Nonce,
		scopes:    slices.DeleteFunc(slices.Clone(req.Scopes), func(sc string) bool { return !slices.Contains(supportedScopes, sc) }),
		challenge: &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod},
		respType:  req.ResponseType, respMode: req.ResponseMode, expires: s.cfg.Now().Add(authRequestTTL),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.authRequests == nil {
		s.authRequests = map[string]*authRequest{}
	}
	if len(s.authRequests) >= maxAuthRequests {
		now := s.cfg.Now()
		for id, old := range s.authRequests {
			if now.After(old.expires) {
				delete(s.authRequests, id)
			}
		}
		if len(s.authRequests) >= maxAuthRequests {
			return nil, oidc.ErrServerError().WithDescription("too many pending sign-ins; try again later")
		}
	}
	s.authRequests[a.id] = a
	return a.copy(), nil
}

// liveAuthRequest returns a stored request that has not expired. Caller
// holds s.mu.
func (s *storage) liveAuthRequest(id string) (*authRequest, bool) {
	a, ok := s.authRequests[id]
	if !ok || s.cfg.Now().After(a.expires) {
		delete(s.authRequests, id)
		return nil, false
	}
	return a, true
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok {
		return nil, oidc.ErrInvalidRequest().WithDescription("the sign-in request expired or is unknown")
	}
	return a.copy(), nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, a := range s.authRequests {
		if a.code != "" && a.code == code {
			if _, ok := s.liveAuthRequest(id); !ok {
				break
			}
			return a.copy(), nil
		}
	}
	return nil, oidc.ErrInvalidGrant().WithDescription("the code is invalid, used or expired")
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok || a.subject == "" || a.code != "" {
		return oidc.ErrInvalidRequest().WithDescription("the sign-in request expired or was used")
	}
	a.code = code
	return nil
}

// DeleteAuthRequest runs when a code is exchanged: a code works once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	return nil
}

// pendingAuthRequest returns the client of a request awaiting sign-in.
// The origin of its redirect URI is the one place besides the IdP the
// sign-in form leads to.
func (s *storage) pendingAuthRequest(id string) (clientID, redirectOrigin string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, live := s.liveAuthRequest(id)
	if !live || a.subject != "" {
		return "", "", false
	}
	u, err := url.Parse(a.redirectURI)
	if err != nil {
		return "", "", false
	}
	return a.clientID, u.Scheme + "://" + u.Host, true
}

// completeAuthRequest marks a request signed in by subject.
func (s *storage) completeAuthRequest(id, subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok || a.subject != "" {
		return false
	}
	a.subject, a.authTime = subject, time.Now()
	return true
}

// errAuthRequestGone is what the sign-in page says of an unknown, expired
// or finished request.
const errAuthRequestGone pageError = "This sign-in link expired or was already used. Go back to the application and sign in again."

// signin is GET and POST /device/signin?id=...: the password form of an
// authorization request, then the redirect to op's callback.
func (p *pages) signin(callback func(ctx context.Context, id string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		clientID, origin, ok := p.store.pendingAuthRequest(id)
		if !ok {
			render(w, http.StatusBadRequest, signinPage, pageData{Error: errAuthRequestGone.Error()})
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			_, sess := p.current(r)
			if sess == nil {
				if _, sess = p.start(w); sess == nil {
					render(w, http.StatusServiceUnavailable, signinPage, pageData{Error: errBusy.Error()})
					return
				}
			}
			render(w, http.StatusOK, signinPage, pageData{CSRF: sess.csrf, ClientID: clientID, RequestID: id, FormTargets: []string{origin}})
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		sid, sess, ok := p.checkForm(w, r)
		if !ok {
			return
		}
		u, ok := p.store.checkPassword(r.PostForm.Get("username"), r.PostForm.Get("password"))
		if !ok {
			p.log.Warn("dev IdP login failed", "client", clientID)
			if p.failed(sid) {
				p.end(w, sid)
				render(w, http.StatusUnauthorized, signinPage, pageData{Error: errTooMany.Error()})
				return
			}
			render(w, http.StatusUnauthorized, signinPage, pageData{CSRF: sess.csrf, ClientID: clientID, RequestID: id, FormTargets: []string{origin},
				Error: errWrongLogin.Error(), Username: r.PostForm.Get("username")})
			return
		}
		if p.store.isDeactivated(u.subject) {
			render(w, http.StatusForbidden, signinPage, pageData{CSRF: sess.csrf, ClientID: clientID, RequestID: id, FormTargets: []string{origin},
				Error: errDeactivatedUser.Error(), Username: u.Username})
			return
		}
		p.end(w, sid) // one sign-in per form
		if !p.store.completeAuthRequest(id, u.subject) {
			render(w, http.StatusBadRequest, signinPage, pageData{Error: errAuthRequestGone.Error()})
			return
		}
		p.log.Info("dev IdP browser sign-in", "user", u.Username, "client", clientID)
		http.Redirect(w, r, callback(r.Context(), id), http.StatusSeeOther)
	}
}

// signinURL is the page a client's authorization request is sent to.
func signinURL(id string) string { return signinPath + "?id=" + url.QueryEscape(id) }
