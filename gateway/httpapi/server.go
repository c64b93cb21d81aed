package httpapi

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// Store is what the API needs of the replicated store.
type Store interface {
	State() *raftstore.State
	FSM() *raftstore.FSM
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	CheckFresh() error
	ConsistentRead(ctx context.Context) error
	Status() (*raftstore.Status, error)
	NodeID() string
	IsLeader() bool
	Leader() (id, addr string)
}

// Cluster performs the membership operations behind the cluster endpoints.
type Cluster interface {
	Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error)
	AddNonvoter(ctx context.Context, nodeID string, req *api.VoterRequest) (uint64, error)
	Promote(ctx context.Context, nodeID string) error
	// EnsureUserCA creates a project's user CA if it has none yet.
	EnsureUserCA(ctx context.Context, project string) error
	// Enroll admits a server whose agent presents a valid enrollment token.
	Enroll(ctx context.Context, req *api.EnrollRequest) (*api.EnrollResponse, error)
	// RenewAgent issues an enrolled server's agent a new certificate for
	// the (already validated) public key in req.
	RenewAgent(ctx context.Context, srv *raftstore.Server, req *api.AgentRenewRequest) (*api.AgentRenewResponse, error)
	// RenewHostCerts certifies an enrolled server's pinned host keys again
	// with the current host CA.
	RenewHostCerts(ctx context.Context, srv *raftstore.Server) (*api.AgentHostCertsResponse, error)
}

// Control makes the changes of the admin endpoints, validated and audited
// there (gateway/control.Service).
type Control interface {
	PutProject(ctx context.Context, a control.Actor, name string, build func(cur *raftstore.Project) (raftstore.Project, error)) (*raftstore.Project, error)
	Grant(ctx context.Context, a control.Actor, g raftstore.Grant) (*raftstore.Grant, error)
	RevokeGrant(ctx context.Context, a control.Actor, project, group string) error
	RegisterServer(ctx context.Context, a control.Actor, srv raftstore.Server) (*raftstore.Server, error)
	DeleteServer(ctx context.Context, a control.Actor, id string, c control.Confirm) (*raftstore.Server, error)
	RemoveNode(ctx context.Context, a control.Actor, id string, c control.Confirm) error
	Backup(ctx context.Context, a control.Actor, w io.Writer, begin func(control.BackupInfo)) (*control.BackupInfo, error)
	SetUserStatus(ctx context.Context, a control.Actor, id string, to raftstore.UserStatus) (*raftstore.User, error)
	CreateToken(ctx context.Context, a control.Actor, req control.TokenRequest) (*api.Token, *raftstore.Token, error)
	RevokeToken(ctx context.Context, a control.Actor, hash string) error
	RevokeBindings(ctx context.Context, a control.Actor, b control.Bindings, c control.Confirm) (n int, what string, err error)
	KillSession(ctx context.Context, a control.Actor, id string, c control.Confirm) error
	CreateServiceToken(ctx context.Context, a control.Actor, req control.ServiceTokenRequest) (string, *raftstore.ServiceToken, error)
	RevokeServiceToken(ctx context.Context, a control.Actor, id string) (*raftstore.ServiceToken, error)
	RotateCA(ctx context.Context, a control.Actor, req control.CARotation, c control.Confirm) (*control.CARotated, error)
	// TouchServiceToken records a token's use (not audited).
	TouchServiceToken(ctx context.Context, id string, at time.Time) error
	// Access requests (accessrequests.go).
	AccessRequest(id string) (*raftstore.AccessRequest, error)
	ApproveAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error)
	DenyAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error)
	RevokeAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error)
}

// Server is the HTTPS API of one node.
type Server struct {
	store   Store
	cluster Cluster
	control Control
	logger  *slog.Logger
	// auditKey checks the audit log's checkpoint (SetAuditKey).
	auditKey ed25519.PublicKey
	mux      *http.ServeMux
	now      func() time.Time
	// adminEntitlement is the sudo entitlement a project admin role gets.
	adminEntitlement string
	// agentBins serves the agent binaries (install.go).
	agentBins *agentBinaries
	// failedLogins bounds how many refused logins per server become audit
	// events of their own (agentevents.go).
	failedLogins failedLoginLimiter
	// timeouts are the connection timeouts HTTPServer set (limits.go).
	timeouts Timeouts
	// enrollLimit and joinLimit bound the unauthenticated endpoints per
	// source; authFail counts and limits refused credentials (limits.go).
	enrollLimit, joinLimit *sourceLimiter
	authFail               authFailures
	// metrics count refusals and agents' long-polls (metrics.go).
	metrics *Metrics
	// tokenLimit bounds the refused requests (403, other 4xx) each service
	// token may make; past it the token is answered 429 (routes.go).
	tokenLimit *sourceLimiter
	// touched and touchWG: the last-used times written (routes.go).
	touched touches
	touchWG sync.WaitGroup
	// patterns lists every route registered (Patterns).
	patterns []string
	// recordings reads and receives session recordings (recordings.go);
	// nil until SetRecordings.
	recordings Recordings
	// agentWaiting, when set, is called each time an agent's state request
	// has read the state and is about to wait for a change: a write after
	// it wakes the request. nil in production; tests wait on it.
	agentWaiting func()
	// clientSetup is what GET /v1/client/setup publishes (clientsetup.go).
	clientSetup clientSetupConfig
	// searcher answers GET /v1/search (search.go).
	searcher Searcher
}

// SetControl sets the service the admin endpoints' changes go through. New
// starts with one over the store alone: it audits through the store,
// registers no loopback target and cannot remove nodes.
func (s *Server) SetControl(c Control) { s.control = c }

// SetMetrics makes the API count into m (registered ones); New starts
// with unregistered ones.
func (s *Server) SetMetrics(m *Metrics) { s.metrics = m }

// SetTokenLimit sets how many refused requests a service token may make:
// burst at once, then one per every (DefaultTokenFailEvery and
// DefaultTokenFailBurst unless called). Call it before serving.
func (s *Server) SetTokenLimit(every time.Duration, burst int) {
	if every > 0 && burst > 0 {
		s.tokenLimit = newSourceLimiter(every, burst)
	}
}

// SetAdminEntitlement names the entitlement project admins get on servers.
func (s *Server) SetAdminEntitlement(name string) { s.adminEntitlement = name }

// New builds the API's handler.
func New(store Store, cluster Cluster, logger *slog.Logger) *Server {
	s := &Server{store: store, cluster: cluster, logger: logger, mux: http.NewServeMux(), now: time.Now,
		enrollLimit: newSourceLimiter(enrollEvery, enrollBurst), joinLimit: newSourceLimiter(joinEvery, joinBurst),
		authFail: authFailures{lim: newSourceLimiter(authFailEvery, authFailBurst)}, metrics: NewMetrics(nil)}
	now := func() time.Time { return s.now() }
	s.control = control.New(control.Deps{Store: store, Auditor: control.StoreAuditor{Store: store, Now: now}, Logger: logger, Now: now})
	s.tokenLimit = newSourceLimiter(DefaultTokenFailEvery, DefaultTokenFailBurst)
	s.handle("GET /v1/health", s.health)
	s.handle("GET /v1/openapi.json", s.openAPI)
	s.handle("POST /v1/cluster/join", s.limited("join", s.joinLimit, s.join))
	s.handle("POST /v1/cluster/join/voter", s.requireNode(s.joinVoter))
	s.handle("POST /v1/cluster/join/promote", s.requireNode(s.joinPromote))
	for _, rt := range s.adminRoutes() {
		s.handle(rt.pattern, s.requireScope(rt))
	}
	s.handle("POST /v1/agents/enroll", s.limited("enroll", s.enrollLimit, s.enroll))
	s.handle("GET /v1/agents/state", s.requireAgent(s.agentStateHandler))
	s.handle("POST /v1/agents/events", s.requireAgent(s.agentEvents))
	s.handle("GET /v1/ca/host", s.hostCAKeys)
	s.handle("GET /v1/ca/node-host", s.nodeHostCAKeys)
	s.handle("GET /v1/ca/user/{project}", s.userCAKeys)
	s.agentBins = newAgentBinaries("")
	s.handle("GET /install.sh", s.installScriptHandler)
	s.handle("GET /v1/agents/binary", s.agentBinary)
	s.handle("GET /v1/ca/tls", s.tlsCAHandler)
	s.handle("GET /v1/client/setup", s.clientSetupHandler)
	s.handle("POST /v1/agents/renew", s.requireAgentRenewal(s.agentRenew))
	s.handle("POST /v1/agents/hostcerts", s.requireAgent(s.agentHostCerts))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

// HTTPError is an error with the status and message a client should see:
// a fault.Error, wherever it started.
type HTTPError = fault.Error

// Errorf returns an HTTPError (fault.Errorf).
func Errorf(status int, format string, args ...any) error {
	return fault.Errorf(status, format, args...)
}

// writeError answers err: an HTTPError as it says, a store sentinel by its
// kind, anything else as a 500 whose detail goes only to the log.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, code := http.StatusInternalServerError, "internal error; see the node's log", ""
	var he *HTTPError
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client went away (an agent stopped, a long-poll cancelled):
		// nobody to answer, nothing wrong with the node.
		s.logger.Debug("client went away", "method", r.Method, "path", r.URL.Path)
		return
	}
	switch {
	case errors.As(err, &he):
		status, msg, code = he.Status, he.Msg, he.Code
	case errors.Is(err, raftstore.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, raftstore.ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, raftstore.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, raftstore.ErrOutcomeUnknown):
		status, msg = http.StatusServiceUnavailable, "the cluster lost its leader while handling this request: the change may or may not have been applied; check before retrying"
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrStaleRead), errors.Is(err, raftstore.ErrShutdown):
		status, msg = http.StatusServiceUnavailable, err.Error()
	}
	if code == "" {
		code = raftstore.ErrorCode(err)
	}
	if code == "" {
		code = statusCode(status)
	}
	if status >= 500 {
		s.logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, api.Error{Error: msg, Code: code})
}

// statusCode is the code of an error whose origin set none: the status's
// generic name.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body strictly: one JSON value and nothing
// after it, no unknown fields, at most maxBody bytes (413 past it).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Anything but white space after the value is refused: a second
		// value a client thought would count, or a body cut and glued.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				return Errorf(http.StatusBadRequest, "request body: unexpected data after the JSON value")
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's read timeout ran out (a body sent too slowly); the
		// client may not be there to read this.
		return Errorf(http.StatusRequestTimeout, "the request body did not arrive in time")
	}
	return Errorf(http.StatusBadRequest, "request body: %v", err)
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	_, leader := s.store.Leader()
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Node: s.store.NodeID(), Leader: s.store.IsLeader(), HasLeader: leader != ""})
}

// requireNode admits only callers with a verified node certificate of a
// current member: a node in the nodes table (a joining node is recorded
// there, with its key, when its join token is spent; a removed node is
// deleted from it), for the key recorded there.
func (s *Server) requireNode(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.authTooMany(w, r) {
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.authFailed(w, r, "no node certificate", Errorf(http.StatusUnauthorized, "a cluster node certificate is required"))
			return
		}
		role, id, ok := api.Identity(r.TLS.VerifiedChains[0][0])
		if !ok || role != api.RoleNode {
			s.authFailed(w, r, "not a node certificate", Errorf(http.StatusForbidden, "a cluster node certificate is required"))
			return
		}
		if err := s.store.ConsistentRead(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
		_, n, err := s.store.State().NodeByID(nil, id)
		if err != nil || n == nil {
			s.authFailed(w, r, "node certificate of a non-member "+id, Errorf(http.StatusForbidden, "node %q is not a member of this cluster", id))
			return
		}
		if !n.HoldsKey(r.TLS.VerifiedChains[0][0].PublicKey) {
			s.authFailed(w, r, "node certificate of "+id+" for a key the node does not hold",
				Errorf(http.StatusForbidden, "this certificate of node %q is not for the key the node joined with", id))
			return
		}
		h(w, r, id)
	}
}

// bearerToken is the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110, section 11.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	return secret, ok && strings.EqualFold(scheme, "Bearer") && secret != ""
}

// adminTokenKey holds the request's admin service token in its context.
type adminTokenKey struct{}

// adminActor is who makes a change through the API: "api:" and the service
// token's name ("api" when there is none), with the source address and the
// token's id on every audit event.
func adminActor(r *http.Request) control.Actor {
	a := control.Actor{Name: "api", Fields: map[string]string{"source": r.RemoteAddr}}
	if tok, ok := r.Context().Value(adminTokenKey{}).(*raftstore.ServiceToken); ok && tok != nil {
		if tok.Name != "" {
			a.Name = "api:" + tok.Name
		}
		a.Fields["token_id"] = tok.ID
	}
	return a
}

// checkAdmin reports whether r carries a valid bearer token of scope admin;
// when not, it has answered r (adminToken, or 403 insufficient_scope).
func (s *Server) checkAdmin(w http.ResponseWriter, r *http.Request, fresh bool) bool {
	tok, ok := s.adminToken(w, r, fresh)
	if ok && !reaches(tok.Role, needAdmin) {
		s.tokenRefused(tok, "insufficient_scope")
		s.writeError(w, r, &fault.Error{Status: http.StatusForbidden, Code: "insufficient_scope",
			Msg: fmt.Sprintf("a token of scope %s cannot use %s %s", tok.Role, r.Method, r.URL.Path)})
		return false
	}
	return ok
}

// adminToken returns the valid bearer token r carries, of any scope (fresh:
// checked against a replica that is not stale); when there is none, it has
// answered r: 429 for a source over its failure limit, 401 for a missing or
// invalid token (counted and logged as a failed authentication).
func (s *Server) adminToken(w http.ResponseWriter, r *http.Request, fresh bool) (*raftstore.ServiceToken, bool) {
	if s.authTooMany(w, r) {
		return nil, false
	}
	secret, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		s.authFailed(w, r, "no bearer token", &fault.Error{Status: http.StatusUnauthorized, Code: "missing_token", Msg: "missing bearer token"})
		return nil, false
	}
	if fresh {
		if err := s.store.CheckFresh(); err != nil {
			s.writeError(w, r, err)
			return nil, false
		}
	}
	_, tok, err := s.store.State().ServiceTokenByHash(nil, api.HashSecret(secret))
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	if tok == nil || (!tok.ExpiresAt.IsZero() && !s.now().Before(tok.ExpiresAt)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart", error="invalid_token"`)
		s.authFailed(w, r, "unknown or expired token", &fault.Error{Status: http.StatusUnauthorized, Code: "invalid_token", Msg: "token is not valid"})
		return nil, false
	}
	return tok, true
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.cluster.Join(r.Context(), &req)
	if err != nil {
		s.metrics.credentialsRefused("join", err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) joinVoter(w http.ResponseWriter, r *http.Request, nodeID string) {
	var req api.VoterRequest
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, err := s.cluster.AddNonvoter(r.Context(), nodeID, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.VoterResponse{Index: idx})
}

func (s *Server) joinPromote(w http.ResponseWriter, r *http.Request, nodeID string) {
	if err := s.cluster.Promote(r.Context(), nodeID); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.Status()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// removeMember takes a node out of raft and the nodes table
// (control.RemoveNode: a node in neither is 404).
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	if err := s.control.RemoveNode(r.Context(), adminActor(r), r.PathValue("id"), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
