package httpapi

import (
	"slices"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Audit event types of logins on targets, as their agents report sshd's
// log (docs/audit-events.md). An accepted login with a certificate the
// node minted carries its serial and key id, as the session.open of the
// session it belongs to does, and the session id from the key id.
const (
	EventSSHDLoginAccept = "sshd_login.accept"
	EventSSHDLoginFail   = "sshd_login.fail"
)

// agentEvents serves POST /v1/agents/events: an agent reports logins on its
// server's sshd. The server comes from the agent's certificate (requireAgent),
// never from the body. Every event is recorded once in the audit log however
// often the agent sends it: AgentEventsAppend skips the seqs the server's
// record says are recorded and records the others, in one raft command.
func (s *Server) agentEvents(w http.ResponseWriter, r *http.Request, srv *raftstore.Server) {
	var req api.AgentEventsRequest
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if n := len(req.Events); n > api.MaxLoginEventBatch {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "%d events in one request: send at most %d", n, api.MaxLoginEventBatch))
		return
	}
	var prev uint64
	for i := range req.Events {
		e := &req.Events[i]
		if err := e.Validate(); err != nil {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "event %d: %v", i, err))
			return
		}
		if e.Seq <= prev {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "event %d: seq %d follows %d: seqs must increase", i, e.Seq, prev))
			return
		}
		prev = e.Seq
	}
	if len(req.Events) == 0 {
		s.lastEventSeq(w, r, srv.ID)
		return
	}
	// Seqs count up by one per event from the last recorded: a far jump
	// would make every later event look like a duplicate.
	if first := req.Events[0].Seq; first > srv.LastEventSeq+maxEventSeqGap || prev > maxEventSeq {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "seq %d..%d is too far past the last recorded (%d)", first, prev, srv.LastEventSeq))
		return
	}
	cas := s.userCAFingerprints(srv.Project)
	cmd := &raftstore.AgentEventsAppend{ServerID: srv.ID, Events: make([]raftstore.AgentEvent, 0, len(req.Events))}
	var run *suppressedRun
	flush := func() {
		if run != nil {
			cmd.Events = append(cmd.Events, raftstore.AgentEvent{Seq: run.lastSeq, Event: run.auditEvent(srv)})
			run = nil
		}
	}
	for i := range req.Events {
		e := &req.Events[i]
		if e.Outcome == api.LoginFailed && !s.failedLogins.allow(srv.ID, s.now()) {
			if run == nil {
				run = &suppressedRun{first: e.Time}
			}
			run.add(e)
			continue
		}
		flush()
		cmd.Events = append(cmd.Events, raftstore.AgentEvent{Seq: e.Seq, Event: loginAuditEvent(srv, e, cas)})
	}
	flush()
	res, err := s.store.Apply(r.Context(), cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var out raftstore.AgentEventsResult
	if err := res.Decode(&out); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logger.Debug("login events recorded", "server", srv.Name, "server_id", srv.ID, "accepted", out.Accepted, "duplicates", out.Duplicates, "last_seq", out.LastSeq)
	writeJSON(w, http.StatusOK, api.AgentEventsResponse{LastSeq: out.LastSeq, Accepted: out.Accepted, Duplicates: out.Duplicates})
}

// lastEventSeq answers an empty batch with the last seq recorded, read after
// the leader's latest commit: an agent with a new spool asks before it
// numbers its events, and a stale answer would have it reuse seqs.
func (s *Server) lastEventSeq(w http.ResponseWriter, r *http.Request, serverID string) {
	if err := s.store.ConsistentRead(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	_, cur, err := s.store.State().ServerByID(nil, serverID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if cur == nil {
		s.writeError(w, r, Errorf(http.StatusGone, "server %s was removed from Rampart; enroll it again", serverID))
		return
	}
	writeJSON(w, http.StatusOK, api.AgentEventsResponse{LastSeq: cur.LastEventSeq})
}

// Bounds on the seqs an agent sends (see agentEvents).
const (
	maxEventSeqGap = 1 << 20
	maxEventSeq    = 1 << 53
)

// userCAFingerprints are the SHA-256 fingerprints (as sshd logs them) of a
// project's user CA keys, retired ones included: a login with an older
// certificate is still that person's.
func (s *Server) userCAFingerprints(project string) map[string]bool {
	out := map[string]bool{}
	_, recs, err := s.store.State().CAsFor(nil, raftstore.CAUser, project)
	if err != nil {
		return out
	}
	for _, rec := range recs {
		if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(rec.PublicKey)); err == nil {
			out[gossh.FingerprintSHA256(k)] = true
		}
	}
	return out
}

// loginAuditEvent is the audit event of a login on srv. Its actor (and
// session) come from a Rampart certificate's key id only when sshd accepted
// the certificate and it was signed by the project's user CA: then the key
// id is the cluster's own, minted for the hop. A refused login's key id is
// whatever the client claimed (anyone can put "rampart user=ceo" in a
// self-signed certificate), so it is recorded as a field and names no one.
func loginAuditEvent(srv *raftstore.Server, e *api.LoginEvent, userCAs map[string]bool) raftstore.AuditEventInput {
	typ := EventSSHDLoginAccept
	if e.Outcome == api.LoginFailed {
		typ = EventSSHDLoginFail
	}
	f := map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project,
		"user": e.User, "source": e.Source, "agent_seq": strconv.FormatUint(e.Seq, 10)}
	for k, v := range map[string]string{"method": e.Method, "key_type": e.KeyType, "fingerprint": e.Fingerprint,
		"key_id": e.KeyID, "serial": e.Serial, "ca_fingerprint": e.CAFingerprint, "reason": e.Reason} {
		if v != "" {
			f[k] = v
		}
	}
	if e.Port != 0 {
		f["port"] = strconv.Itoa(e.Port)
	}
	var actor string
	if e.Outcome != api.LoginFailed && userCAs[e.CAFingerprint] {
		kid := parseRampartKeyID(e.KeyID)
		actor = kid["user"]
		if kid["session"] != "" {
			f["session"] = kid["session"]
		}
	}
	return raftstore.AuditEventInput{Time: e.Time.UTC(), Type: typ, Actor: actor, Fields: f}
}

// parseRampartKeyID reads the key id the bastion gives per-hop certificates,
// "rampart user=alice@example.com session=s1 server=web-1 project=p", whose
// values are %XX-escaped (gateway/ca). Anything else gives nil.
func parseRampartKeyID(keyID string) map[string]string {
	rest, ok := strings.CutPrefix(keyID, "rampart ")
	if !ok {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Fields(rest) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil
		}
		if v == "-" {
			v = ""
		}
		dec, ok := unescapeKeyIDValue(v)
		if !ok {
			return nil
		}
		out[k] = dec
	}
	return out
}

// unescapeKeyIDValue undoes gateway/ca's %XX escaping; it refuses a value
// that decodes to anything the escaping would not have produced.
func unescapeKeyIDValue(v string) (string, bool) {
	if !strings.Contains(v, "%") {
		return v, true
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", false
		}
		n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	out := b.String()
	if !utf8.ValidString(out) || strings.ContainsFunc(out, unicode.IsControl) {
		return "", false
	}
	return out, true
}

// Refused logins are what an internet-facing sshd sees most (scanners), and
// every audit event is replicated and kept: past a per-server rate, runs of
// refused logins become one summary event each. Accepted logins are never
// summarised.
const (
	failedLoginEvery = 10 * time.Second
	failedLoginBurst = 60
	// EventSSHDLoginSummarize counts refused logins recorded together.
	EventSSHDLoginSummarize = "sshd_login.summarize"
	maxSummarySources       = 8
)

// failedLoginLimiter is a token bucket per server (on this node).
type failedLoginLimiter struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (l *failedLoginLimiter) allow(serverID string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*rate.Limiter{}
	}
	lim, ok := l.m[serverID]
	if !ok {
		lim = rate.NewLimiter(rate.Every(failedLoginEvery), failedLoginBurst)
		l.m[serverID] = lim
	}
	return lim.AllowN(now, 1)
}

// suppressedRun is consecutive refused logins over the rate, recorded as one
// event at the seq of the last, so that the seqs the agent sent are all
// accounted for.
type suppressedRun struct {
	count       int
	first, last time.Time
	lastSeq     uint64
	sources     []string
}

func (r *suppressedRun) add(e *api.LoginEvent) {
	r.count++
	r.last, r.lastSeq = e.Time, e.Seq
	if len(r.sources) < maxSummarySources && !slices.Contains(r.sources, e.Source) {
		r.sources = append(r.sources, e.Source)
	}
}

func (r *suppressedRun) auditEvent(srv *raftstore.Server) raftstore.AuditEventInput {
	return raftstore.AuditEventInput{Time: r.last.UTC(), Type: EventSSHDLoginSummarize, Fields: map[string]string{
		"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "count": strconv.Itoa(r.count),
		"first": r.first.UTC().Format(time.RFC3339), "last": r.last.UTC().Format(time.RFC3339),
		"sources": strings.Join(r.sources, ","), "agent_seq": strconv.FormatUint(r.lastSeq, 10)}}
}
