package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// the admin API's routes, and which service-token scope reaches each: one
// table (adminRoutes), checked in one place (requireScope).

// need is what a route asks of a service token's scope.
type need uint8

const (
	// needRead: a read of the cluster's configuration (read, admin).
	needRead need = iota + 1
	// needAudit: a read of the audit log or of sessions (read, admin,
	// auditor).
	needAudit
	// needAdmin: a change, or a read of secrets' metadata such as service
	// tokens (admin).
	needAdmin
	// needRecording: a read of what a session showed (admin, auditor).
	needRecording
	// needRequests: a read of access requests (read, admin, auditor,
	// approver).
	needRequests
	// needDecide: approving, denying or revoking an access request, as the
	// token's owner (admin, approver).
	needDecide
)

func (n need) String() string {
	switch n {
	case needRead:
		return "read"
	case needAudit:
		return "audit"
	case needRecording:
		return "recording"
	case needRequests:
		return "requests"
	case needDecide:
		return "decide"
	}
	return "admin"
}

// scopeReaches lists what each scope reaches. A provisioning token reaches
// none of them: it is SCIM's alone (gateway/httpapi/scim).
var scopeReaches = map[string][]need{
	raftstore.ServiceRoleAdmin:    {needRead, needAudit, needAdmin, needRecording, needRequests, needDecide},
	raftstore.ServiceRoleRead:     {needRead, needAudit, needRequests},
	raftstore.ServiceRoleAuditor:  {needAudit, needRecording, needRequests},
	raftstore.ServiceRoleApprover: {needRequests, needDecide},
}

// reaches reports whether a token of scope may use a route that needs n.
func reaches(scope string, n need) bool { return slices.Contains(scopeReaches[scope], n) }

// route is one endpoint of the admin API.
type route struct {
	// pattern is the ServeMux pattern: "GET /v1/users/{id}".
	pattern string
	need    need
	// fresh: the token is checked against a replica that is not stale
	// (cluster status answers even on a stale follower).
	fresh bool
	h     http.HandlerFunc
}

// adminRoutes is every route a service token reaches.
func (s *Server) adminRoutes() []route {
	return []route{
		{"GET /v1/cluster/status", needRead, false, s.clusterStatus},
		{"GET /v1/cluster/members", needRead, false, s.clusterMembers},
		{"DELETE /v1/cluster/members/{id}", needAdmin, true, s.removeMember},
		{"GET /v1/cluster/backup", needAdmin, true, s.clusterBackup},
		{"GET /v1/projects", needRead, true, s.listProjects},
		{"GET /v1/projects/{name}", needRead, true, s.getProject},
		{"PUT /v1/projects/{name}", needAdmin, true, s.putProject},
		{"GET /v1/projects/{name}/grants", needRead, true, s.listGrants},
		{"PUT /v1/projects/{name}/grants/{group}", needAdmin, true, s.putGrant},
		{"DELETE /v1/projects/{name}/grants/{group}", needAdmin, true, s.deleteGrant},
		{"GET /v1/servers", needRead, true, s.listServers},
		{"GET /v1/servers/{id}", needRead, true, s.getServer},
		{"PUT /v1/servers/{id}", needAdmin, true, s.putServer},
		{"DELETE /v1/servers/{id}", needAdmin, true, s.deleteServer},
		{"GET /v1/users", needRead, true, s.listUsers},
		{"GET /v1/users/{id}", needRead, true, s.getUser},
		{"POST /v1/users/{id}/disable", needAdmin, true, s.disableUser},
		{"POST /v1/users/{id}/enable", needAdmin, true, s.enableUser},
		{"GET /v1/groups", needRead, true, s.listGroups},
		{"GET /v1/entitlements", needRead, true, s.listEntitlements},
		{"GET /v1/tokens", needRead, true, s.listTokens},
		{"POST /v1/tokens", needAdmin, true, s.createToken},
		{"DELETE /v1/tokens/{hash}", needAdmin, true, s.revokeToken},
		{"GET /v1/bindings", needRead, true, s.listBindings},
		{"POST /v1/bindings/revoke", needAdmin, true, s.revokeBindings},
		{"GET /v1/sessions", needAudit, true, s.listSessions},
		{"GET /v1/sessions/{id}", needAudit, true, s.getSession},
		{"GET /v1/sessions/{id}/recording", needRecording, true, s.getSessionRecording},
		{"POST /v1/sessions/{id}/kill", needAdmin, true, s.killSession},
		{"GET /v1/audit", needAudit, true, s.listAudit},
		{"GET /v1/search", needRecording, true, s.search},
		{"GET /v1/audit/verify", needAudit, true, s.verifyAudit},
		{"GET /v1/ca/keys", needRead, true, s.listCAKeys},
		{"POST /v1/ca/host/rotation/{step}", needAdmin, true, s.rotateCA(raftstore.CAHost)},
		{"POST /v1/ca/node-host/rotation/{step}", needAdmin, true, s.rotateCA(raftstore.CANodeHost)},
		{"POST /v1/ca/user/{project}/rotation/{step}", needAdmin, true, s.rotateCA(raftstore.CAUser)},
		{"GET /v1/service-tokens", needAdmin, true, s.listServiceTokens},
		{"POST /v1/service-tokens", needAdmin, true, s.createServiceToken},
		{"DELETE /v1/service-tokens/{id}", needAdmin, true, s.revokeServiceToken},
		{"GET /v1/access-requests", needRequests, true, s.listAccessRequests},
		{"GET /v1/access-requests/{id}", needRequests, true, s.getAccessRequest},
		{"POST /v1/access-requests/{id}/approve", needDecide, true, s.approveAccessRequest},
		{"POST /v1/access-requests/{id}/deny", needDecide, true, s.denyAccessRequest},
		{"POST /v1/access-requests/{id}/revoke", needDecide, true, s.revokeAccessRequest},
	}
}

// handle registers h for pattern and records the pattern (Patterns).
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Patterns lists every route this server answers, as ServeMux patterns.
func (s *Server) Patterns() []string { return slices.Clone(s.patterns) }

// requireScope admits a request whose service token's scope reaches rt, and
// records the token's use (touch) when it does. A token that does not reach rt is
// answered 403 (insufficient_scope) and counted against the token's limit of
// refused requests (tokenLimit), as is every 4xx answer to it after.
func (s *Server) requireScope(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.adminToken(w, r, rt.fresh)
		if !ok {
			return
		}
		if s.tokenLimit.exhausted(tok.ID, s.now()) {
			s.metrics.TokenRefusals.WithLabelValues("rate_limited").Inc()
			w.Header().Set("Retry-After", "5")
			s.writeError(w, r, &fault.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Msg: "too many refused requests with this token; try again shortly"})
			return
		}
		if !reaches(tok.Role, rt.need) {
			s.tokenRefused(tok, "insufficient_scope")
			s.writeError(w, r, &fault.Error{Status: http.StatusForbidden, Code: "insufficient_scope",
				Msg: fmt.Sprintf("a token of scope %s cannot use %s", tok.Role, rt.pattern)})
			return
		}
		s.touch(r.Context(), tok)
		rec := &statusRecorder{ResponseWriter: w}
		rt.h(rec, r.WithContext(context.WithValue(r.Context(), adminTokenKey{}, tok)))
		if rec.status >= 400 && rec.status < 500 && rec.status != http.StatusTooManyRequests {
			s.tokenRefused(tok, "client_error")
		}
	}
}

// tokenRefused counts one refused request against tok's limit.
func (s *Server) tokenRefused(tok *raftstore.ServiceToken, reason string) {
	s.metrics.TokenRefusals.WithLabelValues(reason).Inc()
	if !s.tokenLimit.allow(tok.ID, s.now()) {
		s.logger.Warn("service token over its limit of refused requests", "token_id", tok.ID, "token", tok.Name)
	}
}

// statusRecorder notes the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (holdFor).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush passes a flush on (backups stream).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TouchInterval is how often at most a service token's last-used time is
// written (a raft write): coarse on purpose, so that reads stay reads.
const TouchInterval = time.Minute

// touches remembers, per token id, when this node last wrote its last-used
// time.
type touches struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// touch records tok's use through control, at most once per TouchInterval
// per token from this node, in the background: a request never waits for
// it, nor fails with it.
func (s *Server) touch(ctx context.Context, tok *raftstore.ServiceToken) {
	now := s.now()
	if now.Sub(tok.LastUsedAt) < TouchInterval {
		return
	}
	s.touched.mu.Lock()
	if s.touched.last == nil {
		s.touched.last = map[string]time.Time{}
	}
	if now.Sub(s.touched.last[tok.ID]) < TouchInterval {
		s.touched.mu.Unlock()
		return
	}
	if len(s.touched.last) >= maxSources {
		clear(s.touched.last)
	}
	s.touched.last[tok.ID] = now
	s.touched.mu.Unlock()
	ctl := s.control // read here, in the request, not in the goroutine
	s.touchWG.Add(1)
	go func() {
		defer s.touchWG.Done()
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TouchInterval)
		defer cancel()
		if err := ctl.TouchServiceToken(tctx, tok.ID, now); err != nil {
			s.logger.Debug("service token last-used time not recorded", "token_id", tok.ID, "err", err)
		}
	}()
}

// scopeList is the scopes, for messages.
func scopeList() string { return strings.Join(raftstore.ServiceRoles, ", ") }
