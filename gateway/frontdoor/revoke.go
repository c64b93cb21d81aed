package frontdoor

import (
	"context"
	"io"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/hashicorp/go-memdb"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/raftstore"
)

// A connection that signed in with a device binding lives only as long as
// the binding: once it is revoked (or made anew) the connection opens no
// more sessions, and every node closes its connections that signed in with
// it, which ends their front-door sessions (an admin shell among them) and
// the jump sessions riding on them. raftstore.State.BindingRevoked holds the
// rule; the jump applies the same one to its hops.

// bindingsTable is the table whose changes can revoke a connection.
const bindingsTable = "bindings"

// revokedMessage is what the person is told: on a refused session channel,
// and on each live session before its connection closes.
var revokedMessage = "Rampart: " + jump.ErrBindingRevoked.Error()

// revokeRecheckGap is the least time between two passes over the bound
// connections: a burst of sign-ins (each writes a binding) costs one pass.
const revokeRecheckGap = 100 * time.Millisecond

// revokeTellTimeout bounds how long the message to a connection's sessions
// may hold up its closing (a client that reads nothing more).
const revokeTellTimeout = 2 * time.Second

// revokeGrace is how long a one-shot command (ssh admin@bastion bindings
// revoke ..., ssh bastion whoami) or jump hop running on the connection may
// take to finish before it is closed: an administrator who revokes the key
// of the very connection the command runs on reads its answer, and the jump
// ends its hops itself (it watches the same bindings), telling the person
// why. Interactive shells get no grace of their own.
const revokeGrace = 2 * time.Second

// signedIn is what a connection signed in as; set once by admit.
type signedIn struct {
	userID, login string
	// binding and bindingIndex are the device binding's fingerprint and
	// CreateIndex; "" and 0 without one.
	binding      string
	bindingIndex uint64
}

// boundConns are the live connections of this node that signed in with a
// device binding.
type boundConns struct {
	mu    sync.Mutex
	conns map[*conn]struct{}
}

func (b *boundConns) add(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		b.conns = map[*conn]struct{}{}
	}
	b.conns[c] = struct{}{}
}

func (b *boundConns) remove(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
}

func (b *boundConns) snapshot() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		out = append(out, c)
	}
	return out
}

// BoundConnections is the number of live connections on this node that
// signed in with a device binding.
func (s *Server) BoundConnections() int {
	s.bound.mu.Lock()
	defer s.bound.mu.Unlock()
	return len(s.bound.conns)
}

// track registers a connection that signed in with a binding until it is
// gone. A revocation applied between the binding's read and this
// registration woke the watcher too early: look once more.
func (s *Server) track(c *conn) {
	s.bound.add(c)
	go func() {
		<-c.tc.gone
		s.bound.remove(c)
	}()
	if c.revoked(s.state()) {
		go c.endRevoked()
	}
}

// stateFunc lets a func reading the replica feed a blocking query.
type stateFunc func() *raftstore.State

func (f stateFunc) State() *raftstore.State { return f() }

// Run closes, whenever device bindings change, the connections whose binding
// is gone. Each node's blocking query wakes on its own replica, so a
// revocation made on any node closes the connections on every node within a
// second or two. It also renews the holds of keyless connections
// (keyless.go). Run returns when ctx ends.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.renewKeylessHolds(ctx) })
	var index uint64
	for ctx.Err() == nil {
		next, err := raftstore.BlockingQuery(ctx, stateFunc(s.state), index, time.Minute, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			return st.MaxIndexWatch(ws, bindingsTable), nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.Warn("binding watcher", "err", err)
			next = index
		} else if next != index {
			s.endRevoked()
			index = next
		} else {
			continue
		}
		wait := revokeRecheckGap
		if err != nil {
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// endRevoked closes the bound connections whose binding is gone.
func (s *Server) endRevoked() {
	live := s.bound.snapshot()
	if len(live) == 0 {
		return
	}
	st := s.state()
	for _, c := range live {
		if c.revoked(st) {
			// Each apart: one client slow to take the message holds up no
			// other.
			go c.endRevoked()
		}
	}
}

// sessionChannel refuses a session on a connection whose binding is gone
// and hands any other to gliderlabs.
func (s *Server) sessionChannel(srv *gliderssh.Server, sc *gossh.ServerConn, nc gossh.NewChannel, ctx gliderssh.Context) {
	if c, _ := ctx.Value(ctxKey{}).(*conn); c != nil && c.revoked(s.state()) {
		s.logger.Info("session refused: binding revoked", "user", c.who.login, "key", c.who.binding, "remote", c.remote)
		_ = nc.Reject(gossh.Prohibited, revokedMessage)
		return
	}
	gliderssh.DefaultSessionHandler(srv, sc, nc, ctx)
}

// revoked reports whether the binding c signed in with is gone.
func (c *conn) revoked(st *raftstore.State) bool {
	return st.BindingRevoked(c.who.userID, c.who.binding, c.who.bindingIndex)
}

// endRevoked lets one-shot commands and jump hops finish (revokeGrace), tells the
// sessions still live why, then closes the connection; once. New sessions
// are refused meanwhile (sessionChannel).
func (c *conn) endRevoked() {
	c.endOnce.Do(func() {
		c.s.logger.Info("closing connection: binding revoked", "user", c.who.login, "key", c.who.binding, "remote", c.remote)
		c.s.audit.Record(EventLoginRevoke, c.who.login, map[string]string{"reason": "binding revoked", "key": c.who.binding, "remote": c.remote})
		grace := time.NewTimer(revokeGrace)
	graced:
		for _, ls := range c.liveSessions() {
			if !ls.graced {
				continue
			}
			select {
			case <-ls.done:
			case <-grace.C:
				break graced
			}
		}
		grace.Stop()
		told := make(chan struct{})
		go func() {
			defer close(told)
			for _, ls := range c.liveSessions() {
				if ls.stderr != nil {
					_, _ = io.WriteString(ls.stderr, "\r\n"+revokedMessage+"\r\n")
				}
			}
		}()
		t := time.NewTimer(revokeTellTimeout)
		select {
		case <-told:
		case <-t.C:
		}
		t.Stop()
		_ = c.tc.Close()
	})
}

// liveSession is a session or jump hop running on a connection.
type liveSession struct {
	// stderr is told why the connection closes; nil for a hop, which the
	// jump tells itself.
	stderr io.Writer
	// graced: a one-shot command or a hop, given revokeGrace to end.
	graced bool
	done   chan struct{}
}

// sessionOpened registers a live session on c until the returned func
// runs.
func (c *conn) sessionOpened(stderr io.Writer, graced bool) (closed func()) {
	ls := &liveSession{stderr: stderr, graced: graced, done: make(chan struct{})}
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sessions == nil {
		c.sessions = map[*liveSession]struct{}{}
	}
	c.sessions[ls] = struct{}{}
	return func() {
		c.sessMu.Lock()
		defer c.sessMu.Unlock()
		delete(c.sessions, ls)
		close(ls.done)
	}
}

func (c *conn) liveSessions() []*liveSession {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	out := make([]*liveSession, 0, len(c.sessions))
	for ls := range c.sessions {
		out = append(out, ls)
	}
	return out
}
