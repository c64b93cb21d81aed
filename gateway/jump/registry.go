package jump

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// registry holds the live proxied sessions of this node, so that a policy
// change (user disabled, grant revoked, server deleted, session killed) ends
// them at once.
type registry struct {
	mu       sync.Mutex
	sessions map[string]*liveSession
}

type liveSession struct {
	id, userID string
	login      string
	server     *raftstore.Server
	// identity is the outer connection's, with the binding it signed in
	// with.
	identity Identity
	// settings are the project's when the session was authorized: a
	// session that policy has since made stricter ends.
	settings raftstore.ProjectSettings
	// requestID is the access request the session runs under, if any:
	// set when it opened, or adopted by a recheck (read and written only
	// by the watcher once the session is registered).
	requestID string
	end       func(reason string)
	// adoptRequest ends the session at the end of a request's window
	// (session.adoptRequest); nil in tests that need none.
	adoptRequest func(id string, ends time.Time)
}

func newRegistry() *registry { return &registry{sessions: map[string]*liveSession{}} }

func (r *registry) add(s *liveSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[s.id] = s
}

func (r *registry) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, id)
}

func (r *registry) snapshot() []*liveSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*liveSession, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	return out
}

// Count is the number of live proxied sessions on this node.
func (p *Proxy) Count() int {
	p.sessions.mu.Lock()
	defer p.sessions.mu.Unlock()
	return len(p.sessions.sessions)
}

// policyTables are the tables whose changes can revoke any live session.
// Of session changes only the closing of one this node carries can end a
// live session (an administrator's kill); it gets the cheaper check, and
// sessions opened or closed elsewhere wake nothing. A change of bindings
// (every sign-in writes one) gets the cheap binding check alone.
var policyTables = []string{"users", "grants", "projects", "servers", raftstore.TableAccessRequests}

const bindingsTable = "bindings"

// recheckGap is the least time between two rechecks. Changes arriving
// meanwhile are handled together by the next one, so a burst of session
// opens and closes (each a write to the sessions table) costs one pass over
// the live sessions instead of one per write, and revocation still takes
// well under the two seconds promised.
const recheckGap = 100 * time.Millisecond

// Run re-checks live sessions whenever users, grants, projects, servers,
// device bindings or sessions change, and ends those no longer allowed. Raft applies a change
// on every node within milliseconds, and each node's blocking query wakes on
// its own replica, so a disabled user's sessions end on every node well
// within two seconds. Run returns when ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	var policyIdx, bindingsIdx, sessionsIdx uint64
	for ctx.Err() == nil {
		var newPolicy, newBindings, newSessions uint64
		_, err := raftstore.BlockingQuery(ctx, p.store.FSM(), max(policyIdx, bindingsIdx, sessionsIdx), time.Minute, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			newPolicy = st.MaxIndexWatch(ws, policyTables...)
			newBindings = st.MaxIndexWatch(ws, bindingsTable)
			newSessions = st.MaxIndexWatch(ws, raftstore.SessionsClosedIndex(p.cfg.NodeID))
			return max(newPolicy, newBindings, newSessions), nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.logger.Warn("session watcher", "err", err)
			time.Sleep(time.Second)
			continue
		}
		switch {
		case newPolicy != policyIdx:
			p.recheck(checkPolicy)
		case newBindings != bindingsIdx:
			p.recheck(checkBindings)
		case newSessions != sessionsIdx:
			p.recheck(checkKills)
		default:
			continue
		}
		policyIdx, bindingsIdx, sessionsIdx = newPolicy, newBindings, newSessions
		select {
		case <-ctx.Done():
		case <-time.After(recheckGap):
		}
	}
}

// What a person whose session an administrator ended, or whose key's
// binding was revoked, is told.
const (
	killedReason         = "an administrator ended this session"
	bindingRevokedReason = "the sign-in of your key was revoked"
)

// adminSaid is ": " and the reason an administrator gave for ending a
// session (control.EndSession), or "" when they gave none.
func adminSaid(st *raftstore.State, id string) string {
	_, rec, err := st.SessionByID(nil, id)
	if err != nil || rec == nil {
		return ""
	}
	if _, said, ok := strings.Cut(rec.EndReason, control.EndReasonSep); ok && said != "" {
		return ": " + said
	}
	return ""
}

// recheckDepth is how much a recheck looks at; each depth includes the
// ones before it.
type recheckDepth int

const (
	// checkKills: only whether an administrator closed the session.
	checkKills recheckDepth = iota
	// checkBindings: also whether the binding it signed in with is gone.
	checkBindings
	// checkPolicy: also the user, grant, login, server and project.
	checkPolicy
)

// recheck ends the live sessions an administrator killed (their records are
// closed while they still run here), after a change of bindings those whose
// binding was revoked, and after a policy change those their user, grant,
// server or record no longer allows. The kill check reads every live
// session's record in one transaction: it runs on each batch of session
// opens and closes, with thousands of sessions live; the binding check is
// one lookup per session.
func (p *Proxy) recheck(depth recheckDepth) {
	live := p.sessions.snapshot()
	if len(live) == 0 {
		return
	}
	st := p.store.State()
	ids := make([]string, len(live))
	for i, s := range live {
		ids[i] = s.id
	}
	closed := st.ClosedSessions(ids)
	for _, s := range live {
		reason := ""
		if depth >= checkPolicy {
			reason = p.revoked(st, s)
		}
		if reason == "" && depth >= checkBindings && bindingRevoked(st, s.identity) {
			reason = bindingRevokedReason
		}
		if reason == "" && closed[s.id] {
			reason = killedReason + adminSaid(st, s.id)
		}
		if reason != "" {
			p.logger.Info("ending session", "session", s.id, "reason", reason)
			// Each apart: one session slow to end holds up no other.
			go s.end(reason)
		}
	}
}

// revoked reports a session its user, grant, login or server no longer
// allows, or whose project's policy became stricter than it was when the
// session was authorized (a long-lived multiplexed connection must not keep
// forwarding, unrecorded terminals or a shared login policy took away).
func (p *Proxy) revoked(st *raftstore.State, s *liveSession) string {
	_, u, err := st.UserByID(nil, s.userID)
	if err != nil {
		return ""
	}
	if u == nil || u.Status != raftstore.UserActive {
		return "your account was disabled"
	}
	if reason := p.requestEnded(st, s); reason != "" {
		return reason
	}
	_, srv, err := st.ServerByID(nil, s.server.ID)
	switch {
	case err != nil:
		srv = s.server
	case srv == nil:
		return "the server was removed from Rampart"
	case srv.Addr != s.server.Addr || srv.SSHPort != s.server.SSHPort:
		return "the server's address changed"
	}
	acc, err := authorizeServer(st, u, srv)
	if err != nil {
		return "your access to project " + srv.Project + " was revoked"
	}
	if err := acc.loginAllowed(u, s.login); err != nil {
		return "project " + srv.Project + " no longer lets you log in as " + s.login
	}
	if stricter(s.settings, acc.project.Settings) {
		return "the policy of project " + srv.Project + " changed"
	}
	p.adoptRequest(s, acc)
	return ""
}

// adoptRequest makes a session opened under a group grant that now stands
// on an approved request alone (the grant was removed) that request's: it
// ends with the request's window, on this node's timer, and with its
// revocation (requestEnded). Each node's watcher does so for the sessions
// it carries.
func (p *Proxy) adoptRequest(s *liveSession, acc *access) {
	if s.requestID != "" {
		return
	}
	r := acc.requestFor(acc.user, s.login)
	if r == nil {
		return
	}
	s.requestID = r.ID
	p.logger.Info("session now runs under an access request", "session", s.id, "request", r.ID, "expires_at", r.ExpiresAt)
	if s.adoptRequest != nil {
		s.adoptRequest(r.ID, r.ExpiresAt)
	}
}

// stricter reports whether now takes away something then allowed: a kind
// of forwarding, unrecorded terminals or input, failing open, or time.
func stricter(then, now raftstore.ProjectSettings) bool {
	shorter := func(then, now time.Duration) bool { return now > 0 && (then == 0 || now < then) }
	return then.AllowLocalForward && !now.AllowLocalForward ||
		then.AllowRemoteForward && !now.AllowRemoteForward ||
		then.AllowAgentForward && !now.AllowAgentForward ||
		!then.Recording && now.Recording ||
		now.Recording && !then.RecordInput && now.RecordInput ||
		then.RecordingFailOpen && !now.RecordingFailOpen ||
		shorter(then.IdleTimeout, now.IdleTimeout) ||
		shorter(then.MaxSessionDuration, now.MaxSessionDuration)
}
