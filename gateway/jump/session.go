package jump

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// session is one proxied connection as its bridge, its channels and its
// recordings see it: who and where, the project's settings as they were
// when the connection was authorized, where its events go, its clock, and
// how it ends. It is built once per connection, so nothing past the
// authorization reaches back through the proxy or the connection for them.
type session struct {
	id string
	// actor is the person's Rampart login: the actor of the audit events.
	actor string
	// server and project are the target's name and project, node this
	// node's id, remote the person's address: the fields of every event.
	server, project, node, remote string
	started                       time.Time
	// settings are the project's when the session was authorized: a
	// change that takes something away ends the session (registry.go)
	// instead of applying to it midway.
	settings raftstore.ProjectSettings
	// requestID and requestEnds are the access request the session runs
	// under and the end of its window; "" and zero under a group grant.
	// Set once, when the login is allowed, before the session opens.
	requestID   string
	requestEnds time.Time
	// windowMu guards the request window timers (requests.go): the one
	// of requestID, and those a recheck adopts later. windowClosed is set
	// once they are stopped, so none starts after.
	windowMu     sync.Mutex
	windowStops  []func()
	windowClosed bool

	audit  Auditor
	logger *slog.Logger
	// record starts a recording (nil: the node records nothing).
	record RecorderFactory
	clock  clock
	// metrics count recording failures (record.go).
	metrics *Metrics

	lastSeen atomic.Int64 // unix nanoseconds of the last data either way

	mu sync.Mutex
	// shutdown tells the person why and ends the connection (the bridge's);
	// nil until the bridge exists.
	shutdown func(msg string)
	// closing is set with the reason once the connection is being ended.
	closing    string
	recordings int // recordings started on this connection
	// recSHA and recPath are the first recording's, which the session's
	// record names.
	recSHA, recPath string
}

// fields returns the audit fields of the session with extra key-value
// pairs added.
func (s *session) fields(extra ...string) map[string]string {
	f := map[string]string{"session": s.id, "server": s.server, "project": s.project, "node": s.node, "remote": s.remote}
	if s.requestID != "" {
		f["request"] = s.requestID
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	return f
}

// event records an audit event of the session's person with the
// session's fields and extra key-value pairs.
func (s *session) event(typ string, extra ...string) {
	s.audit.Record(typ, s.actor, s.fields(extra...))
}

// touch marks the session active now: it runs on every read of the data
// path, so it only stores a number.
func (s *session) touch()                  { s.lastSeen.Store(s.clock.Now().UnixNano()) }
func (s *session) lastActivity() time.Time { return time.Unix(0, s.lastSeen.Load()) }

// end closes the connection for reason (policy change, idle, max duration,
// a recording the project requires failing). The first reason is the one
// recorded; ending twice is harmless.
func (s *session) end(reason string) {
	s.mu.Lock()
	if s.closing == "" {
		s.closing = reason
	}
	shutdown := s.shutdown
	s.mu.Unlock()
	if shutdown != nil {
		shutdown("Rampart: session ended: " + reason)
	}
}

// endReason is why the session ended: the first reason given to end, or
// "closed" when one side went away.
func (s *session) endReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing == "" {
		return "closed"
	}
	return s.closing
}

// clock is the time the jump's limits run on: the real one in production,
// a fake that tests drive (limits_test.go).
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
	NewTicker(d time.Duration) ticker
}

type timer interface {
	C() <-chan time.Time
	Stop() bool
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

// realClock is the time package's.
type realClock struct{}

func (realClock) Now() time.Time                   { return time.Now() }
func (realClock) NewTimer(d time.Duration) timer   { return realTimer{time.NewTimer(d)} }
func (realClock) NewTicker(d time.Duration) ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
