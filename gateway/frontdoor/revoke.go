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
// second or two. Run returns when ctx ends.
func (s *Server) Run(ctx context.Context) {
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

// endRevoked tells the connection's live sessions why, then closes the
// connection; once.
func (c *conn) endRevoked() {
	c.endOnce.Do(func() {
		c.s.logger.Info("closing connection: binding revoked", "user", c.who.login, "key", c.who.binding, "remote", c.remote)
		c.s.audit.Record("login.revoked", c.who.login, map[string]string{"reason": "binding revoked", "key": c.who.binding, "remote": c.remote})
		told := make(chan struct{})
		go func() {
			defer close(told)
			for _, w := range c.liveSessions() {
				_, _ = io.WriteString(w, "\r\n"+revokedMessage+"\r\n")
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

// sessionOpened registers the stderr of a live session on c until the
// returned func runs.
func (c *conn) sessionOpened(stderr io.Writer) (closed func()) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sessions == nil {
		c.sessions = map[*io.Writer]struct{}{}
	}
	key := &stderr
	c.sessions[key] = struct{}{}
	return func() {
		c.sessMu.Lock()
		defer c.sessMu.Unlock()
		delete(c.sessions, key)
	}
}

func (c *conn) liveSessions() []io.Writer {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	out := make([]io.Writer, 0, len(c.sessions))
	for w := range c.sessions {
		out = append(out, *w)
	}
	return out
}
