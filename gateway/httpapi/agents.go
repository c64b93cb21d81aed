package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.cluster.Enroll(r.Context(), &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// requireAgent admits callers with a verified agent certificate whose server
// is still enrolled, from the machine it enrolled from, for the server's
// current agent key (a certificate replaced by a renewal or a re-enrollment
// is refused, however long it is still valid). An agent can only ever read
// its own server's state: the server id comes from its certificate, never
// from the request.
func (s *Server) requireAgent(h func(http.ResponseWriter, *http.Request, *raftstore.Server)) http.HandlerFunc {
	return s.agentGate(h, false)
}

// agentGate is requireAgent; retiredMayRenew also admits a certificate for
// the key the last renewal replaced (requireAgentRenewal).
func (s *Server) agentGate(h func(http.ResponseWriter, *http.Request, *raftstore.Server), retiredMayRenew bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.writeError(w, r, Errorf(http.StatusUnauthorized, "an agent certificate is required"))
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		role, id, ok := ca.Identity(leaf)
		if !ok || role != ca.RoleAgent {
			s.writeError(w, r, Errorf(http.StatusForbidden, "an agent certificate is required"))
			return
		}
		// The handshake checked validity when the connection opened; a
		// kept-alive connection must not outlive the certificate.
		if now := s.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			s.writeError(w, r, Errorf(http.StatusUnauthorized, "the agent certificate expired at %s; the agent renews it before then, or must enroll again", leaf.NotAfter.UTC().Format(time.RFC3339)))
			return
		}
		if err := s.store.CheckFresh(); err != nil {
			s.writeError(w, r, err)
			return
		}
		_, srv, err := s.store.State().ServerByID(nil, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if srv == nil {
			s.writeError(w, r, Errorf(http.StatusGone, "server %s was removed from Rampart; enroll it again", id))
			return
		}
		if srv.MachineID != "" && r.Header.Get(api.MachineIDHeader) != srv.MachineID {
			s.logger.Warn("agent credential used from another machine", "server", id, "remote", r.RemoteAddr)
			s.writeError(w, r, Errorf(http.StatusConflict, "this agent's credential belongs to another machine (a cloned image?): enroll this one with its own token"))
			return
		}
		if srv, ok = s.checkAgentKey(w, r, srv, leaf, retiredMayRenew); !ok {
			return
		}
		h(w, r, srv)
	}
}

// agentStateHandler serves GET /v1/agents/state?index=N&wait=60s.
func (s *Server) agentStateHandler(w http.ResponseWriter, r *http.Request, srv *raftstore.Server) {
	minIndex, wait, err := blocking(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var out *api.AgentState
	idx, err := raftstore.BlockingQuery(r.Context(), s.store.FSM(), minIndex, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
		var err error
		out, err = agentState(ws, st, srv.ID, s.adminEntitlement)
		if err != nil {
			return 0, err
		}
		return out.Index, nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out.Index = idx
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
}
