package events

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

const (
	// maxPending bounds the connections followed at once; beyond it the
	// oldest is forgotten.
	maxPending = 4096
	// maxPendingAge forgets a connection that never logged an outcome
	// (sshd killed mid-handshake); sshd's LoginGraceTime is far shorter.
	maxPendingAge = 15 * time.Minute
	// maxReasons bounds the reasons kept for one connection.
	maxReasons = 8
	// sweepEvery is how many lines pass between two sweeps for old
	// connections.
	sweepEvery = 256
)

// pendingConn is a connection that has not been authenticated yet.
type pendingConn struct {
	addr      string
	port      int
	user      string
	invalid   bool
	attempted bool // an authentication attempt or a user was logged
	method    string
	key       keyInfo
	reasons   []string
	started   time.Time
	order     uint64
}

// tracker turns sshd's messages into one login event per connection: the
// Accepted line of an authenticated one, or, for one that ends without,
// a failure carrying what its attempts said (the most telling key offered,
// sshd's reasons). A client that offers a plain key before the certificate
// that opens the account is one accepted login, not a failure and a login.
//
// Messages that do not name their connection (a certificate's rejection is
// logged before the attempt it belongs to) are tied to it by the logging
// pid; a log without pids (sshd -E) ties them to the connection last named,
// which is right unless connections interleave.
type tracker struct {
	conns      map[string]*pendingConn
	byPID      map[int]string
	pidReasons map[int][]string
	last       string
	order      uint64
	lines      int
}

func newTracker() *tracker {
	return &tracker{conns: map[string]*pendingConn{}, byPID: map[int]string{}, pidReasons: map[int][]string{}}
}

// idle reports whether no connection is half-way through: a position read
// now can be resumed from without losing what a connection logged so far.
func (t *tracker) idle() bool { return len(t.conns) == 0 }

func connKey(addr string, port int) string { return addr + " port " + strconv.Itoa(port) }

// feed reads one message logged at at and returns the login event it
// completes, if any.
func (t *tracker) feed(l Line, at time.Time) *api.LoginEvent {
	if t.lines++; t.lines%sweepEvery == 0 {
		t.sweep(at)
	}
	r := t.parse(l.Text)
	key := connKey(r.addr, r.port)
	switch r.kind {
	case recConnect:
		delete(t.conns, key) // a port reused: the old connection is over
		t.bind(l.PID, t.get(r, at))
	case recSeen, recAttempt, recReasonConn:
		c := t.get(r, at)
		c.merge(r)
		t.bind(l.PID, c)
	case recAccepted:
		delete(t.conns, key)
		delete(t.pidReasons, l.PID) // what failed before does not matter now
		c := &pendingConn{addr: r.addr, port: r.port}
		c.merge(r)
		return c.event(api.LoginAccepted, at)
	case recReason:
		switch c := t.pidConn(l.PID); {
		case c != nil:
			c.addReason(r.reason)
		case l.PID == 0 && t.conns[t.last] != nil:
			t.conns[t.last].addReason(r.reason)
		default:
			// Logged before any line naming its connection: kept for the
			// next connection this pid (or, without pids, any) names.
			if len(t.pidReasons) >= maxPending {
				clear(t.pidReasons)
			}
			t.pidReasons[l.PID] = appendReason(t.pidReasons[l.PID], r.reason)
		}
	case recEnd:
		c := t.get(r, at)
		t.bind(l.PID, c)
		delete(t.conns, key)
		c.merge(r)
		if !c.attempted {
			return nil // nobody tried to log in: a scanner, a probe
		}
		return c.event(api.LoginFailed, at)
	case recEndUser:
		c := t.pidConn(l.PID)
		if c == nil || c.user != r.user {
			c = t.latestOf(r.user)
		}
		if c == nil {
			return nil // no address to report it with
		}
		delete(t.conns, connKey(c.addr, c.port))
		c.addReason(r.reason)
		return c.event(api.LoginFailed, at)
	}
	return nil
}

// get returns the pending connection r names, starting one if needed.
func (t *tracker) get(r record, at time.Time) *pendingConn {
	key := connKey(r.addr, r.port)
	t.last = key
	if c := t.conns[key]; c != nil {
		return c
	}
	if len(t.conns) >= maxPending {
		t.evictOldest()
	}
	t.order++
	c := &pendingConn{addr: r.addr, port: r.port, started: at, order: t.order}
	t.conns[key] = c
	return c
}

// bind ties pid to c and hands c the reasons pid logged before (without
// pids, pid 0: the reasons no connection was named for).
func (t *tracker) bind(pid int, c *pendingConn) {
	if pid != 0 {
		if len(t.byPID) >= 4*maxPending {
			clear(t.byPID)
		}
		t.byPID[pid] = connKey(c.addr, c.port)
	}
	for _, r := range t.pidReasons[pid] {
		c.addReason(r)
	}
	delete(t.pidReasons, pid)
}

func (t *tracker) pidConn(pid int) *pendingConn {
	if pid == 0 {
		return nil
	}
	return t.conns[t.byPID[pid]]
}

// latestOf is the newest pending connection of user.
func (t *tracker) latestOf(user string) *pendingConn {
	var found *pendingConn
	for _, c := range t.conns {
		if c.user == user && (found == nil || c.order > found.order) {
			found = c
		}
	}
	return found
}

func (t *tracker) evictOldest() {
	var oldest *pendingConn
	for _, c := range t.conns {
		if oldest == nil || c.order < oldest.order {
			oldest = c
		}
	}
	if oldest != nil {
		delete(t.conns, connKey(oldest.addr, oldest.port))
	}
}

// sweep forgets connections older than maxPendingAge.
func (t *tracker) sweep(now time.Time) {
	for k, c := range t.conns {
		if now.Sub(c.started) > maxPendingAge {
			delete(t.conns, k)
		}
	}
}

// merge adds what r says about the connection.
func (c *pendingConn) merge(r record) {
	if r.user != "" {
		c.user = r.user
		c.attempted = true
	}
	c.invalid = c.invalid || r.invalid
	if r.method != "" && r.kind != recSeen {
		c.method = r.method
	}
	if r.kind == recAttempt {
		c.attempted = true
	}
	// Keep the most telling key: a certificate names its key id and
	// serial, a plain key only itself.
	if r.key.Type != "" && (r.key.isCert() || !c.key.isCert()) {
		c.key = r.key
	}
	c.addReason(r.reason)
}

func (c *pendingConn) addReason(r string) { c.reasons = appendReason(c.reasons, r) }

func appendReason(rs []string, r string) []string {
	if r == "" || len(rs) >= maxReasons {
		return rs
	}
	for _, have := range rs {
		if have == r {
			return rs
		}
	}
	return append(rs, r)
}

// event is the login event of the connection.
func (c *pendingConn) event(outcome string, at time.Time) *api.LoginEvent {
	e := &api.LoginEvent{Time: at.UTC(), Outcome: outcome, User: c.user, Source: c.addr, Port: c.port, Method: c.method,
		KeyType: c.key.Type, Fingerprint: c.key.Fingerprint, KeyID: c.key.KeyID, Serial: c.key.Serial, CAFingerprint: c.key.CAFingerprint}
	if outcome == api.LoginFailed {
		e.Reason = strings.Join(c.reasons, "; ")
	}
	e.Clamp()
	return e
}

// parse reads a message; an ambiguous one (a user name or key id holding
// " from <ip> port <n>" of its own) is read again with the address of a
// connection sshd announced ("Connection from", logged at VERBOSE, which the
// agent's sshd drop-in sets), so that a client cannot choose the source
// address its attempt is reported with.
func (t *tracker) parse(msg string) record {
	r := parseMessage(msg)
	if r.addr == "" || r.kind == recConnect || strings.Count(msg, " port ") < 2 {
		return r
	}
	if _, known := t.conns[connKey(r.addr, r.port)]; known {
		return r
	}
	for _, c := range t.conns {
		port := strconv.Itoa(c.port)
		if !strings.Contains(msg, " "+c.addr+" port "+port) {
			continue
		}
		if r2 := parseWith(addressPatterns(regexp.QuoteMeta(c.addr), port), msg); r2.kind == r.kind {
			return r2
		}
	}
	return r
}
