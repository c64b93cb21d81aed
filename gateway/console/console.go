// Package console is the auditor's web console at /console/ on a node's
// API listener: sign-in with the IdP (authorization code + PKCE), sessions
// found by who, where, when, outcome or text typed, played in the browser,
// shared by signed, revocable links, live sessions ended by admins, and
// access requests approved or denied by their approvers.
package console

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

// Audit event types the console writes.
const (
	EventSignIn        = "console.sign_in"
	EventSignInRefused = "console.sign_in_refuse"
	EventRecordingView = "recording.view"
	EventShareCreate   = "console_share.create"
	EventShareRevoke   = "console_share.revoke"
)

// Defaults of Config's zero fields.
const (
	DefaultIdleTimeout  = 30 * time.Minute
	DefaultMaxSession   = 12 * time.Hour
	DefaultAuditorGroup = "rampart-auditors"
)

// Config is the console's configuration.
type Config struct {
	// Issuer, ClientID and ClientSecret name the OIDC client (the same
	// issuer as SSH sign-in). An empty secret makes it a public client:
	// PKCE alone protects the code.
	Issuer, ClientID, ClientSecret string
	// RedirectURL is https://<node>:8443/console/callback as the IdP
	// knows it.
	RedirectURL string
	// Scopes requested; "openid" is always among them.
	Scopes []string
	// UsernameClaim and GroupsClaim name the ID token's claims.
	UsernameClaim, GroupsClaim string
	// AuditorGroup may see sessions, recordings and audit; AdminGroup also
	// live sessions, and may end one.
	AuditorGroup, AdminGroup string
	// IdleTimeout ends a console session nobody used for that long.
	IdleTimeout time.Duration
	// MaxSession ends any console session this long after sign-in.
	MaxSession time.Duration
	// HTTPClient reaches the IdP (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// State is what the console reads of the replicated state.
type State interface {
	State() *raftstore.State
}

// Applier writes share links into the replicated state.
type Applier interface {
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// Recordings opens a session's recording from whichever node holds it
// (today gateway/recording/archive; replicated fetching later).
type Recordings interface {
	Open(ctx context.Context, s *raftstore.Session) (io.ReadCloser, error)
}

// Auditor records an audit event.
type Auditor interface {
	Record(ctx context.Context, typ, actor string, fields map[string]string) error
}

// Killer ends a live session cluster-wide, audited, with a reason the
// person sees (gateway/control).
type Killer interface {
	EndSession(ctx context.Context, a control.Actor, id, reason string) error
}

// Requests lists and decides access requests (gateway/control), which
// checks and audits each decision.
type Requests interface {
	AccessRequests(f control.AccessRequestFilter) ([]*raftstore.AccessRequest, error)
	ApproveAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error)
	DenyAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error)
}

// Deps are the services the console uses.
type Deps struct {
	State      State
	Applier    Applier
	Recordings Recordings
	Auditor    Auditor
	Killer     Killer
	// Requests, when set, gives approvers the requests page (nil: no
	// page, and no approver role).
	Requests Requests
	// Search is the full-text index (nil: search is off).
	Search *Index
	// ShareKey signs share links; every node must have the same one.
	ShareKey []byte
	Logger   *slog.Logger
	Now      func() time.Time
	// SignInKey seals sign-ins under way into their cookie
	// (SignInKeySize bytes; every node should have the same one, so a
	// sign-in completes on any; otherwise a random key of this process).
	SignInKey []byte
}

// Console serves the pages.
type Console struct {
	cfg   Config
	deps  Deps
	auth  *authenticator
	mux   *http.ServeMux
	now   func() time.Time
	log   *slog.Logger
	pages map[string]*template.Template
	// shareLimit bounds how often share links are played (shareCast).
	shareLimit shareLimiter
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// New builds the console.
func New(cfg Config, deps Deps) *Console {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxSession <= 0 {
		cfg.MaxSession = DefaultMaxSession
	}
	if cfg.AuditorGroup == "" {
		cfg.AuditorGroup = DefaultAuditorGroup
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, deps: deps, mux: http.NewServeMux(), now: deps.Now, log: deps.Logger.With("component", "console")}
	c.auth = newAuthenticator(cfg, deps.SignInKey, c.now, c.log)
	c.pages = parsePages()
	assets, _ := fs.Sub(assetFS, "assets")
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", assetHandler(http.FileServerFS(assets))))
	c.mux.HandleFunc("GET /console/login", c.login)
	c.mux.HandleFunc("GET /console/callback", c.callback)
	c.mux.HandleFunc("POST /console/logout", c.signedIn(roleAny, c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.signedIn(roleAuditor, c.sessionsPage))
	c.mux.HandleFunc("GET /console/sessions/{id}", c.signedIn(roleAuditor, c.sessionPage))
	c.mux.HandleFunc("GET /console/sessions/{id}/cast", c.signedIn(roleAuditor, c.sessionCast))
	c.mux.HandleFunc("POST /console/sessions/{id}/share", c.signedIn(roleAuditor, c.createShare))
	c.mux.HandleFunc("POST /console/sessions/{id}/kill", c.signedIn(roleAdmin, c.killSession))
	c.mux.HandleFunc("GET /console/live", c.signedIn(roleAdmin, c.livePage))
	c.mux.HandleFunc("GET /console/shares", c.signedIn(roleAuditor, c.sharesPage))
	c.mux.HandleFunc("POST /console/shares/{id}/revoke", c.signedIn(roleAuditor, c.revokeShare))
	if deps.Requests != nil {
		c.mux.HandleFunc("GET /console/requests", c.signedIn(roleDecider, c.requestsPage))
		c.mux.HandleFunc("POST /console/requests/{id}/approve", c.signedIn(roleDecider, c.approveRequest))
		c.mux.HandleFunc("POST /console/requests/{id}/deny", c.signedIn(roleDecider, c.denyRequest))
	}
	c.mux.HandleFunc("GET /console/share/{token}", c.sharePage)
	c.mux.HandleFunc("GET /console/share/{token}/cast", c.shareCast)
	c.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	return c
}

// contentSecurityPolicy allows the console's own scripts, styles and
// fetches, and nothing inline or from elsewhere. 'wasm-unsafe-eval' lets
// asciinema-player compile its (embedded) terminal emulator.
const contentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler, with the console's security headers
// on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// assetHandler serves the embedded assets, cacheable for an hour.
func assetHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// parsePages parses each page with the layout.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"secs": func(f float64) string {
			return time.Duration(f * float64(time.Second)).Round(100 * time.Millisecond).String()
		},
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	entries, _ := fs.Glob(templateFS, "templates/*.html")
	for _, e := range entries {
		name := strings.TrimPrefix(e, "templates/")
		if name == "layout.html" {
			continue
		}
		out[strings.TrimSuffix(name, ".html")] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, e))
	}
	return out
}

// view is what every page gets.
type view struct {
	Title string
	// Who is signed in (nil on share and error pages).
	Who  *consoleSession
	CSRF string
	Data any
}

func (c *Console) render(w http.ResponseWriter, status int, page string, v view) {
	if v.Who != nil {
		v.CSRF = v.Who.csrf
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.Error("console page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with the error page: msg is for the person, never internals.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	who, _, _ := c.session(r)
	c.render(w, status, "error", view{Title: "Error", Who: who, Data: msg})
}

// audit records an event; a failure is logged (the log and the metrics of
// the audit writer tell operators), and the caller decides what it means.
// An event written for a signed-in person (ctx from signedIn) also carries
// their IdP subject (sub) and, when they have a Rampart account, its id
// (user_id): the login alone may name two people.
func (c *Console) audit(ctx context.Context, typ, actor string, fields map[string]string) error {
	if c.deps.Auditor == nil {
		return nil
	}
	if s := sessionFrom(ctx); s != nil {
		f := make(map[string]string, len(fields)+2)
		maps.Copy(f, fields)
		fields = f
		fields["sub"] = s.Subject
		if s.UserID != "" {
			fields["user_id"] = s.UserID
		}
	}
	err := c.deps.Auditor.Record(ctx, typ, actor, fields)
	if err != nil {
		c.log.Error("console audit event not recorded", "type", typ, "actor", actor, "err", err)
	}
	return err
}
