package devidp

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Page paths. devicePath is the verification URI op hands to clients.
const (
	devicePath  = "/device"
	loginPath   = "/device/login"
	confirmPath = "/device/confirm"
	// pollsPath reports how often a pending code's device has polled the
	// token endpoint: tests check with it that an abandoned sign-in stopped
	// polling. Like the pages, it needs the user code.
	pollsPath = "/device/polls"
)

const (
	sessionCookie    = "devidp_session"
	sessionTTL       = 15 * time.Minute
	maxSessions      = 10_000
	maxLoginFailures = 5
	maxFormBytes     = 16 << 10
)

// More errors the pages show.
const (
	errSessionGone     pageError = "Your sign-in session expired or cookies are blocked. Open the link again to start over."
	errBadForm         pageError = "That form was stale or did not come from this page. Open the link again to start over."
	errWrongLogin      pageError = "Wrong username or password."
	errTooMany         pageError = "Too many failed attempts. Open the link again to start over."
	errBusy            pageError = "The sign-in service is busy. Try again in a minute."
	errNotLoggedIn     pageError = "Sign in before approving. Open the link again to start over."
	errUnknownForm     pageError = "Choose Approve or Deny."
	errDeactivatedUser pageError = "This account is deactivated."
)

// session is one browser's way through the pages. A session begins at the
// code-entry page, is replaced by a fresh one (new id, new CSRF token) when
// the person logs in, and ends with the approve/deny decision.
type session struct {
	csrf     string
	expires  time.Time
	failures int

	// Set by a successful login, for exactly this user code.
	user     *user
	userCode string // canonical
}

// pages serves the user-code, login and approve/deny pages.
type pages struct {
	store  *storage
	log    *slog.Logger
	secure bool // Secure cookies (https issuer)

	mu       sync.Mutex
	sessions map[string]*session
}

func newPages(store *storage, log *slog.Logger, secure bool) *pages {
	return &pages{store: store, log: log, secure: secure, sessions: map[string]*session{}}
}

// only refuses other methods than method (and HEAD for GET). Method
// patterns on the ServeMux would not do: a wrong method would fall through
// to the provider's catch-all "/".
func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", method)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	}
}

// polls is GET /device/polls?user_code=...: {"user_code": ..., "polls": n}.
func (p *pages) polls(w http.ResponseWriter, r *http.Request) {
	canon := canonicalUserCode(r.URL.Query().Get("user_code"))
	n, ok := p.store.pollCount(canon)
	if !ok {
		http.Error(w, "unknown user code", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"user_code": displayUserCode(canon), "polls": n})
}

// entry is GET /device: the code-entry page, or with ?user_code= the login
// page for that code.
func (p *pages) entry(w http.ResponseWriter, r *http.Request) {
	_, sess := p.current(r)
	if sess == nil {
		if _, sess = p.start(w); sess == nil {
			render(w, http.StatusServiceUnavailable, codePage, pageData{Error: errBusy.Error()})
			return
		}
	}
	typed := r.URL.Query().Get("user_code")
	if typed == "" {
		render(w, http.StatusOK, codePage, pageData{})
		return
	}
	pc, err := p.store.lookupUserCode(canonicalUserCode(typed))
	if err != nil {
		render(w, http.StatusBadRequest, codePage, pageData{Error: err.Error(), Typed: typed})
		return
	}
	render(w, http.StatusOK, loginPage, pageData{CSRF: sess.csrf, UserCode: pc.userCode, ClientID: pc.clientID})
}

// login is POST /device/login: check the password, then show the approval
// page under a fresh session bound to that user and code.
func (p *pages) login(w http.ResponseWriter, r *http.Request) {
	id, sess, ok := p.checkForm(w, r)
	if !ok {
		return
	}
	typed := r.PostForm.Get("user_code")
	canon := canonicalUserCode(typed)
	pc, err := p.store.lookupUserCode(canon)
	if err != nil {
		render(w, http.StatusBadRequest, codePage, pageData{Error: err.Error(), Typed: typed})
		return
	}
	u, ok := p.store.checkPassword(r.PostForm.Get("username"), r.PostForm.Get("password"))
	if !ok {
		// The attempted name is not logged: people type passwords into it.
		p.log.Warn("dev IdP login failed", "client", pc.clientID)
		if p.failed(id) {
			p.end(w, id)
			render(w, http.StatusUnauthorized, codePage, pageData{Error: errTooMany.Error()})
			return
		}
		render(w, http.StatusUnauthorized, loginPage, pageData{
			CSRF: sess.csrf, UserCode: pc.userCode, ClientID: pc.clientID,
			Error: errWrongLogin.Error(), Username: r.PostForm.Get("username"),
		})
		return
	}
	if p.store.isDeactivated(u.subject) {
		p.log.Info("dev IdP login refused: user deactivated", "user", u.Username)
		render(w, http.StatusForbidden, loginPage, pageData{
			CSRF: sess.csrf, UserCode: pc.userCode, ClientID: pc.clientID,
			Error: errDeactivatedUser.Error(), Username: u.Username,
		})
		return
	}
	// A new session id at login, so an id planted before it is worth nothing.
	p.forget(id)
	_, sess = p.start(w)
	if sess == nil {
		render(w, http.StatusServiceUnavailable, codePage, pageData{Error: errBusy.Error()})
		return
	}
	p.mu.Lock()
	sess.user, sess.userCode = u, canon
	p.mu.Unlock()
	render(w, http.StatusOK, confirmPage, pageData{
		CSRF: sess.csrf, UserCode: pc.userCode, ClientID: pc.clientID,
		Scopes: pc.scopes, Username: u.Username,
	})
}

// confirm is POST /device/confirm: approve or deny, once.
func (p *pages) confirm(w http.ResponseWriter, r *http.Request) {
	id, sess, ok := p.checkForm(w, r)
	if !ok {
		return
	}
	p.mu.Lock()
	u, canon := sess.user, sess.userCode
	p.mu.Unlock()
	if u == nil || canon == "" {
		render(w, http.StatusForbidden, codePage, pageData{Error: errNotLoggedIn.Error()})
		return
	}
	var approve bool
	switch r.PostForm.Get("action") {
	case "approve":
		approve = true
	case "deny":
	default:
		render(w, http.StatusBadRequest, codePage, pageData{Error: errUnknownForm.Error()})
		return
	}
	pc, err := p.store.lookupUserCode(canon)
	if err == nil {
		err = p.store.decide(canon, u.subject, approve)
	}
	p.end(w, id) // one decision per login
	if err != nil {
		render(w, http.StatusBadRequest, codePage, pageData{Error: err.Error()})
		return
	}
	decision := "denied"
	if approve {
		decision = "approved"
	}
	p.log.Info("dev IdP device authorization "+decision, "user", u.Username, "client", pc.clientID)
	render(w, http.StatusOK, donePage, pageData{Approved: approve, Username: u.Username, ClientID: pc.clientID})
}

// checkForm parses a POSTed form and checks its session and CSRF token,
// rendering the refusal itself when they fail.
func (p *pages) checkForm(w http.ResponseWriter, r *http.Request) (string, *session, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		render(w, http.StatusBadRequest, codePage, pageData{Error: errBadForm.Error()})
		return "", nil, false
	}
	id, sess := p.current(r)
	if sess == nil {
		render(w, http.StatusForbidden, codePage, pageData{Error: errSessionGone.Error()})
		return "", nil, false
	}
	got := r.PostForm.Get("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		p.log.Warn("dev IdP form refused: CSRF token mismatch", "path", r.URL.Path)
		render(w, http.StatusForbidden, codePage, pageData{Error: errBadForm.Error()})
		return "", nil, false
	}
	return id, sess, true
}

// current returns the request's live session, if any.
func (p *pages) current(r *http.Request) (string, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[c.Value]
	if !ok || p.store.cfg.Now().After(s.expires) {
		delete(p.sessions, c.Value)
		return "", nil
	}
	return c.Value, s
}

// start makes a new session and sets its cookie; nil when at capacity.
func (p *pages) start(w http.ResponseWriter) (string, *session) {
	now := p.store.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sessions) >= maxSessions {
		for id, s := range p.sessions {
			if now.After(s.expires) {
				delete(p.sessions, id)
			}
		}
		if len(p.sessions) >= maxSessions {
			return "", nil
		}
	}
	id := randomToken(32)
	s := &session{csrf: randomToken(32), expires: now.Add(sessionTTL)}
	p.sessions[id] = s
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: devicePath,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
	return id, s
}

// forget drops a session; its cookie is left to be replaced.
func (p *pages) forget(id string) {
	p.mu.Lock()
	delete(p.sessions, id)
	p.mu.Unlock()
}

// end forgets a session and clears its cookie.
func (p *pages) end(w http.ResponseWriter, id string) {
	p.forget(id)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: devicePath, MaxAge: -1,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	})
}

// failed counts a failed login and reports whether the session is spent.
func (p *pages) failed(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[id]
	if !ok {
		return true
	}
	s.failures++
	return s.failures >= maxLoginFailures
}
