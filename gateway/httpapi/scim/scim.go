// Package scim is the node's SCIM 2.0 service provider at /scim/v2/
// (Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas), built on
// github.com/elimity-com/scim and accepting Okta's and Entra ID's ways of
// speaking it. It is a surface: every change goes through gateway/control,
// only provisioning tokens get in, and every request is audited.
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"golang.org/x/time/rate"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// MaxBody bounds a request body (SCIM's maxPayloadSize).
const MaxBody = 1 << 20

// MaxResults is the largest page a list answers.
const MaxResults = 100

// MaxQuery bounds a request's query string and MaxFilter its filter: a
// filter's cost grows with its length, and IdPs send short ones
// (userName eq "…").
const (
	MaxQuery  = 4096
	MaxFilter = 1024
)

// DefaultCreatesPerMinute is how many users and groups one provisioning
// token may create a minute (Config.CreatesPerMinute): each takes a uid or
// gid for good.
const DefaultCreatesPerMinute = 120

// Audit events of refused credentials are bounded (refusedEvery, at most
// refusedBurst at once): unauthenticated callers must not fill the audit
// log. The next event written says how many were not.
const (
	refusedEvery = time.Second
	refusedBurst = 20
)

// EventRequest is the audit event of a request that made no change of its
// own (a read, a refusal, a change that changed nothing): a change is
// audited by gateway/control under its own type.
const EventRequest = "scim.request"

func init() {
	// Entra ID sends booleans as strings ("False"): accept them. The switch
	// is the library's, process-wide; nothing else in the node uses it.
	schema.SetAllowStringValues(true)
}

// Store is what SCIM reads of the replicated store.
type Store interface {
	State() *raftstore.State
	// CheckFresh fails on a replica too far behind the leader to decide
	// who may do what.
	CheckFresh() error
}

// Control makes SCIM's changes (gateway/control.Service).
type Control interface {
	SCIMCreateUser(ctx context.Context, a control.Actor, in control.SCIMUser) (*raftstore.User, error)
	SCIMUpdateUser(ctx context.Context, a control.Actor, id string, in control.SCIMUser) (*raftstore.User, error)
	SCIMDeleteUser(ctx context.Context, a control.Actor, id string) error
	SCIMPutGroup(ctx context.Context, a control.Actor, in control.SCIMGroup, create bool) (*raftstore.Group, error)
	SCIMPatchGroupMembers(ctx context.Context, a control.Actor, group string, add, remove []string) (*raftstore.Group, error)
	SCIMDeleteGroup(ctx context.Context, a control.Actor, group string) error
}

// Guard limits failed authentications per source (the API's limiter).
type Guard interface {
	// TooMany reports whether r's source is over its limit of failures.
	TooMany(r *http.Request) bool
	// Failed counts and logs one refused credential; why is for the log.
	Failed(r *http.Request, why string)
}

// Config is what a Handler runs on.
type Config struct {
	Store   Store
	Control Control
	Auditor control.Auditor
	Guard   Guard
	// Logger may be nil (discard); Now nil means time.Now.
	Logger *slog.Logger
	Now    func() time.Time
	// CreatesPerMinute bounds the users and groups each provisioning token
	// creates (POST), as a rate with a burst of as many; 0 means
	// DefaultCreatesPerMinute.
	CreatesPerMinute int
}

// Handler serves /scim/v2/ (mounted with the /scim prefix stripped).
type Handler struct {
	cfg Config
	srv scim.Server

	mu      sync.Mutex
	creates map[string]*rate.Limiter // by token id
	// refused bounds the audit events of refused credentials;
	// refusedSkipped counts those not written since the last one.
	refused        *rate.Limiter
	refusedSkipped int
}

// New returns the SCIM handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CreatesPerMinute <= 0 {
		cfg.CreatesPerMinute = DefaultCreatesPerMinute
	}
	h := &Handler{cfg: cfg, creates: map[string]*rate.Limiter{}, refused: rate.NewLimiter(rate.Every(refusedEvery), refusedBurst)}
	srv, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/rampart-ssh/rampart/blob/main/docs/scim.md"),
			AuthenticationSchemes: []scim.AuthenticationScheme{{Type: scim.AuthenticationTypeOauthBearerToken, Name: "Provisioning token",
				Description: "A service token of scope provisioning: scim tokens create NAME in the admin shell", Primary: true}},
			MaxResults: MaxResults, SupportFiltering: true, SupportPatch: true,
		},
		ResourceTypes: []scim.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users", Description: optional.NewString("People"),
				Schema: schema.CoreUserSchema(), SchemaExtensions: []scim.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
				Handler: users{h}},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups", Description: optional.NewString("Groups that grants name"),
				Schema: schema.CoreGroupSchema(), Handler: groups{h}},
		},
	}, scim.WithLogger(libLogger{cfg.Logger}))
	if err != nil {
		return nil, err
	}
	h.srv = srv
	return h, nil
}

// libLogger gives the library's error lines to slog.
type libLogger struct{ l *slog.Logger }

func (l libLogger) Error(args ...any) { l.l.Error("scim library", "detail", args) }

// request is what one request carries through the library to the
// handlers: who, and whether control wrote a change event for it (then
// that event is the request's record; otherwise scim.request is).
type request struct {
	actor   control.Actor
	changed bool
}

// newRequest is the request of token tok from r.
func newRequest(r *http.Request, tok *raftstore.ServiceToken) *request {
	q := &request{actor: control.Actor{Name: "scim:" + tok.Name, Fields: map[string]string{"source": r.RemoteAddr, "token_id": tok.ID}}}
	q.actor.Audited = func(string) { q.changed = true }
	return q
}

type requestKey struct{}

func from(r *http.Request) *request {
	if q, ok := r.Context().Value(requestKey{}).(*request); ok {
		return q
	}
	return &request{actor: control.Actor{Name: "scim"}}
}

// ServeHTTP authenticates the provisioning token, bounds the body, serves
// the request, and audits it unless a change audited it already.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	rec := &recorder{ResponseWriter: w}
	tok, why := h.authenticate(rec, r)
	if tok == nil {
		h.auditRefused(r, rec, why)
		return
	}
	q := newRequest(r, tok)
	if refuse := h.bound(rec, r, tok); refuse {
		h.auditRequest(r, q, rec)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		var tooBig *http.MaxBytesError
		switch {
		case len(body) > MaxBody || errors.As(err, &tooBig):
			writeError(rec, http.StatusRequestEntityTooLarge, "", "The request body is larger than "+strconv.Itoa(MaxBody)+" bytes.")
			h.auditRequest(r, q, rec)
			return
		case err != nil:
			writeError(rec, http.StatusBadRequest, scimerrors.ScimTypeInvalidSyntax, "The request body could not be read.")
			h.auditRequest(r, q, rec)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	h.srv.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestKey{}, q)))
	if !q.changed || rec.status >= 400 {
		h.auditRequest(r, q, rec)
	}
}

// authenticate returns the provisioning token r carries, or answers r
// (429 over the failure limit, 401 otherwise) and says why.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*raftstore.ServiceToken, string) {
	if h.cfg.Guard != nil && h.cfg.Guard.TooMany(r) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "", "Too many failed authentications from your address; try again shortly.")
		return nil, "too many failed authentications"
	}
	refuse := func(why string) (*raftstore.ServiceToken, string) {
		if h.cfg.Guard != nil {
			h.cfg.Guard.Failed(r, why)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-scim"`)
		writeError(w, http.StatusUnauthorized, "", "A valid provisioning token is required.")
		return nil, why
	}
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return refuse("no bearer token")
	}
	if err := h.cfg.Store.CheckFresh(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "", "This node cannot serve SCIM now; retry.")
		return nil, "replica not fresh"
	}
	_, tok, err := h.cfg.Store.State().ServiceTokenByHash(nil, api.HashSecret(secret))
	if err != nil {
		h.cfg.Logger.Error("scim: read service token", "err", err)
		writeError(w, http.StatusInternalServerError, "", "Internal error; see the node's log.")
		return nil, "internal error"
	}
	switch {
	case tok == nil, !tok.ExpiresAt.IsZero() && !h.cfg.Now().Before(tok.ExpiresAt):
		return refuse("unknown or expired token")
	case tok.Role != raftstore.ServiceRoleProvisioning:
		// An admin token is not a provisioning token: each does one job.
		return refuse("token of scope " + tok.Role + ", not provisioning")
	}
	return tok, ""
}

// bound answers r and returns true when it is over a bound: a query or
// filter too long to parse (400), or a create over the token's rate
// (429).
func (h *Handler) bound(w http.ResponseWriter, r *http.Request, tok *raftstore.ServiceToken) bool {
	switch {
	case len(r.URL.RawQuery) > MaxQuery:
		writeError(w, http.StatusBadRequest, scimerrors.ScimTypeInvalidFilter, "The query is longer than "+strconv.Itoa(MaxQuery)+" bytes.")
		return true
	case len(r.URL.Query().Get("filter")) > MaxFilter:
		writeError(w, http.StatusBadRequest, scimerrors.ScimTypeInvalidFilter, "The filter is longer than "+strconv.Itoa(MaxFilter)+" bytes.")
		return true
	}
	if r.Method != http.MethodPost {
		return false
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/v2/Users", "/v2/Groups":
	default:
		return false
	}
	h.mu.Lock()
	lim := h.creates[tok.ID]
	if lim == nil {
		n := h.cfg.CreatesPerMinute
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		h.creates[tok.ID] = lim
	}
	h.mu.Unlock()
	if lim.AllowN(h.cfg.Now(), 1) {
		return false
	}
	w.Header().Set("Retry-After", "30")
	writeError(w, http.StatusTooManyRequests, "", "This provisioning token created "+strconv.Itoa(h.cfg.CreatesPerMinute)+
		" users and groups in the last minute, its limit; retry later.")
	return true
}

// auditRefused writes the event of a request refused before its token
// was known (401, 429, 503), within the refused-event bound.
func (h *Handler) auditRefused(r *http.Request, rec *recorder, why string) {
	h.mu.Lock()
	if !h.refused.AllowN(h.cfg.Now(), 1) {
		h.refusedSkipped++
		h.mu.Unlock()
		return
	}
	skipped := h.refusedSkipped
	h.refusedSkipped = 0
	h.mu.Unlock()
	q := &request{actor: control.Actor{Name: "scim:unauthenticated", Fields: map[string]string{"source": r.RemoteAddr, "reason": why}}}
	if skipped > 0 {
		q.actor.Fields["not_audited"] = strconv.Itoa(skipped)
	}
	h.auditRequest(r, q, rec)
}

// auditRequest writes the request's own event: who, what, the result.
func (h *Handler) auditRequest(r *http.Request, q *request, rec *recorder) {
	f := map[string]string{"method": r.Method, "path": r.URL.Path, "status": strconv.Itoa(rec.status)}
	if r.URL.RawQuery != "" {
		f["query"] = truncate(r.URL.RawQuery, 512)
	}
	if rec.status >= 400 {
		var e struct{ ScimType, Detail string }
		if json.Unmarshal(rec.errBody.Bytes(), &e) == nil {
			f["scim_type"], f["detail"] = e.ScimType, truncate(e.Detail, 256)
		}
	}
	for k, v := range q.actor.Fields {
		f[k] = v
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := h.cfg.Auditor.Record(ctx, EventRequest, q.actor.Name, f); err != nil {
		h.cfg.Logger.Error("scim request not audited", "user", q.actor.Name, "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// recorder keeps the status and the start of an error body.
type recorder struct {
	http.ResponseWriter
	status  int
	errBody bytes.Buffer
}

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && w.errBody.Len() < 2048 {
		w.errBody.Write(b[:min(len(b), 2048)])
	}
	return w.ResponseWriter.Write(b)
}

// writeError answers a SCIM error body.
func writeError(w http.ResponseWriter, status int, typ scimerrors.ScimType, detail string) {
	raw, _ := json.Marshal(scimerrors.ScimError{Status: status, ScimType: typ, Detail: detail})
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// scimError turns an error of control or the store into the SCIM error
// the library answers: its status and message when it is a fault error
// (never internals), a 500 whose detail stays in the log otherwise.
func (h *Handler) scimError(r *http.Request, err error) error {
	var se scimerrors.ScimError
	if errors.As(err, &se) {
		return se
	}
	var fe *fault.Error
	switch {
	case errors.As(err, &fe):
		out := scimerrors.ScimError{Status: fe.Status, Detail: fe.Msg}
		switch {
		case fe.Status == http.StatusConflict:
			out.ScimType = scimerrors.ScimTypeUniqueness
		case fe.Code == "mutability":
			out.ScimType = scimerrors.ScimTypeMutability
		case fe.Status == http.StatusBadRequest:
			out.ScimType = scimerrors.ScimTypeInvalidValue
		}
		return out
	case errors.Is(err, raftstore.ErrNotFound):
		return scimerrors.ScimError{Status: http.StatusNotFound, Detail: "Resource not found."}
	case errors.Is(err, raftstore.ErrConflict):
		return scimerrors.ScimError{Status: http.StatusConflict, ScimType: scimerrors.ScimTypeUniqueness, Detail: err.Error()}
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrStaleRead), errors.Is(err, raftstore.ErrOutcomeUnknown):
		return scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "The cluster cannot take changes now; retry."}
	}
	h.cfg.Logger.Error("scim request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return scimerrors.ScimError{Status: http.StatusInternalServerError, Detail: "Internal error; see the node's log."}
}

// page cuts one page out of all (1-based start, count at most MaxResults).
func page(all []scim.Resource, p scim.ListRequestParams) scim.Page {
	start := max(p.StartIndex, 1) - 1
	out := scim.Page{TotalResults: len(all), Resources: []scim.Resource{}}
	if start < len(all) {
		out.Resources = all[start:min(len(all), start+p.Count)]
	}
	return out
}

func meta(created, modified time.Time, index uint64) scim.Meta {
	return scim.Meta{Created: &created, LastModified: &modified, Version: `W/"` + strconv.FormatUint(index, 10) + `"`}
}
