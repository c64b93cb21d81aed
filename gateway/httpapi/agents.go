package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
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
		s.metrics.credentialsRefused("enroll", err)
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
		if s.authTooMany(w, r) {
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.authFailed(w, r, "no agent certificate", Errorf(http.StatusUnauthorized, "an agent certificate is required"))
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		role, id, ok := api.Identity(leaf)
		if !ok || role != api.RoleAgent {
			s.authFailed(w, r, "not an agent certificate", Errorf(http.StatusForbidden, "an agent certificate is required"))
			return
		}
		// The handshake checked validity when the connection opened; a
		// kept-alive connection must not outlive the certificate.
		if now := s.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			s.authFailed(w, r, "agent certificate expired", Errorf(http.StatusUnauthorized, "the agent certificate expired at %s; the agent renews it before then, or must enroll again", leaf.NotAfter.UTC().Format(time.RFC3339)))
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
		s.noteSeen(r.Context(), srv)
		h(w, r, srv)
	}
}

// seenWriteTimeout bounds the heartbeat write an agent's request makes.
const seenWriteTimeout = 5 * time.Second

// noteSeen records that srv's agent called (LastSeen, which servers ls
// shows), when the recorded time is due to move: ServerSeen writes only
// past raftstore.ServerSeenResolution, so a request within it writes
// nothing. A failed write is logged and the request goes on: a heartbeat is
// not worth refusing an agent its state.
func (s *Server) noteSeen(ctx context.Context, srv *raftstore.Server) {
	now := s.now().UTC()
	if !srv.LastSeen.IsZero() && now.Sub(srv.LastSeen) < raftstore.ServerSeenResolution {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, seenWriteTimeout)
	defer cancel()
	if _, err := s.store.Apply(ctx, &raftstore.ServerSeen{ID: srv.ID, Now: now}); err != nil {
		s.logger.Warn("could not record an agent's heartbeat", "server", srv.Name, "server_id", srv.ID, "err", err)
	}
}

// agentStateHandler serves GET /v1/agents/state?index=N&wait=60s.
func (s *Server) agentStateHandler(w http.ResponseWriter, r *http.Request, srv *raftstore.Server) {
	minIndex, wait, err := blocking(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if minIndex != 0 {
		s.holdFor(w, blockingHold(wait))
		defer s.metrics.polled(srv.ID)()
	}
	if v := r.URL.Query().Get(api.AgentAppliedParam); v != "" {
		applied, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "%s %q is not a number", api.AgentAppliedParam, v))
			return
		}
		// Recorded beside the wait, never in front of it: during an election
		// the write waits for a leader, and the agent must not. An answer
		// that comes first cancels it, which loses nothing: the agent has a
		// new state to apply and reports again at once.
		recordCtx, stopRecord := context.WithCancel(r.Context())
		var recording sync.WaitGroup
		recording.Go(func() { s.recordApplied(recordCtx, srv.ID, applied) })
		defer func() { stopRecord(); recording.Wait() }()
	}
	// An agent that is up to date waits until its own state changes, not
	// merely the tables it is computed from: a write elsewhere (another
	// project's server, a person in no granted group) would otherwise send
	// every agent of the fleet its unchanged state and have it ask again.
	// The state the agent holds is the one computed at its index; later
	// wake-ups compare against it and keep waiting while it is the same.
	var (
		out            *api.AgentState
		baseline       []byte
		latest         uint64
		sameSinceIndex bool
	)
	idx, err := raftstore.BlockingQuery(r.Context(), s.store.FSM(), minIndex, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
		var err error
		if out, err = agentState(ws, st, srv.ID, s.adminEntitlement); err != nil {
			return 0, err
		}
		sum := stateDigest(out)
		switch {
		case minIndex == 0 || out.Index > minIndex && baseline == nil:
			// The agent is behind: answer at once.
			return out.Index, nil
		case baseline == nil:
			// What the agent holds: wait for something else.
			baseline = sum
			s.waitingAgent()
			return out.Index, nil
		case bytes.Equal(sum, baseline):
			latest, sameSinceIndex = out.Index, true
			s.waitingAgent()
			return minIndex, nil
		}
		// Changed: answer, with an index past the agent's even if a
		// restored snapshot numbers this state lower.
		return max(out.Index, minIndex+1), nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if sameSinceIndex && latest > idx {
		// The wait ran out with nothing new for this server: the newest
		// index lets the agent's next wait start from here.
		idx = latest
	}
	out.Index = idx
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
}

// waitingAgent calls the agentWaiting hook, if any.
func (s *Server) waitingAgent() {
	if s.agentWaiting != nil {
		s.agentWaiting()
	}
}

// stateDigest is the SHA-256 of an agent state's content, its index aside.
func stateDigest(st *api.AgentState) []byte {
	c := *st
	c.Index = 0
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return sum[:]
}

// recordApplied replicates how far a server's agent has got, for the jump
// on every node (gateway/jump waits for it before it dials a person's new
// account). It writes only when the index moved forward, so an agent's
// steady polling costs no raft write; a failed write is logged and the poll
// served anyway: the agent reports again on its next poll.
func (s *Server) recordApplied(ctx context.Context, serverID string, applied uint64) {
	if applied == 0 {
		return
	}
	if _, a, err := s.store.State().AgentAppliedOf(nil, serverID); err == nil && a != nil && a.Index >= applied {
		return
	}
	if _, err := s.store.Apply(ctx, &raftstore.AgentAppliedSet{ServerID: serverID, Index: applied}); err != nil && ctx.Err() == nil {
		s.logger.Warn("record the agent's applied index", "server", serverID, "index", applied, "err", err)
	}
}
