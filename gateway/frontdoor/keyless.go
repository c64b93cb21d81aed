package frontdoor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// A connection signed in without a key (ssh -o PubkeyAuthentication=no
// admin@bastion: the device flow, no binding) has no binding for
// re-validation to follow, so the front door holds its person's IdP session
// while it is open (raftstore.IdPSessionHold): the raft leader keeps
// re-validating them, and deactivates them — which ends the admin shell and
// the jump hops — when the IdP refuses them. A hold is renewed every
// keylessRenew for keylessHoldTTL, and released when the person's last
// keyless connection on this node ends; a node that dies stops renewing,
// and its holds run out.
const (
	keylessHoldTTL = 3 * time.Minute
	keylessRenew   = time.Minute
	// holdTimeout bounds one hold write.
	holdTimeout = 10 * time.Second
)

// keylessConns counts this node's open keyless connections per person.
type keylessConns struct {
	mu    sync.Mutex
	users map[string]int
}

// newHolderID names this front door in the holds it writes.
func newHolderID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "frontdoor-" + hex.EncodeToString(b)
}

// trackKeyless holds c's person's IdP session until c is gone.
func (s *Server) trackKeyless(c *conn) {
	userID := c.who.userID
	s.keyless.mu.Lock()
	if s.keyless.users == nil {
		s.keyless.users = map[string]int{}
	}
	s.keyless.users[userID]++
	first := s.keyless.users[userID] == 1
	s.keyless.mu.Unlock()
	if first {
		s.hold(userID, s.now().Add(keylessHoldTTL))
	}
	go func() {
		<-c.tc.gone
		s.keyless.mu.Lock()
		s.keyless.users[userID]--
		last := s.keyless.users[userID] == 0
		if last {
			delete(s.keyless.users, userID)
		}
		s.keyless.mu.Unlock()
		if last {
			s.hold(userID, time.Time{})
		}
	}()
}

// KeylessConnections is the number of people with a live connection on
// this node signed in without a key.
func (s *Server) KeylessConnections() int {
	s.keyless.mu.Lock()
	defer s.keyless.mu.Unlock()
	return len(s.keyless.users)
}

// hold writes (until set) or releases this front door's hold on a person's
// IdP session. A failure is logged: the hold is renewed within
// keylessRenew, and without it the person is re-validated no longer.
func (s *Server) hold(userID string, until time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), holdTimeout)
	defer cancel()
	if err := s.login.HoldIdPSession(ctx, userID, s.holder, until); err != nil {
		s.logger.Warn("could not hold the IdP session of a keyless connection", "user_id", userID, "release", until.IsZero(), "err", err)
	}
}

// renewKeylessHolds renews the holds of this node's keyless connections
// every keylessRenew until ctx ends.
func (s *Server) renewKeylessHolds(ctx context.Context) {
	t := time.NewTicker(keylessRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.keyless.mu.Lock()
		users := make([]string, 0, len(s.keyless.users))
		for u := range s.keyless.users {
			users = append(users, u)
		}
		s.keyless.mu.Unlock()
		for _, u := range users {
			s.hold(u, s.now().Add(keylessHoldTTL))
		}
	}
}
