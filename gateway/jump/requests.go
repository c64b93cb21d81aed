package jump

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	gwaccess "github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/raftstore"
)

// A session opened under a just-in-time access request (gateway/access
// requests.go) carries the request's id in its record and events, and ends
// when the request's window does: on a timer of this node's from the
// replicated record, and on the request's revocation or expiry through the
// policy watcher, whichever comes first.

// refusalText is what a refused person is shown: for want of a grant in a
// project that takes their requests, one line they can copy to ask.
func (p *Proxy) refusalText(err error) string {
	var nr *gwaccess.NeedRequestError
	if !errors.As(err, &nr) {
		return err.Error()
	}
	cmd := p.cfg.RequestCommand
	if cmd == "" {
		cmd = "ssh bastion"
	}
	// ASCII only: OpenSSH escapes anything else in a channel-open failure.
	return fmt.Sprintf("%s. Ask for it: %s request %s --for %s --reason %s", nr.Error(), cmd, nr.Project, nr.SuggestedDuration(), strconv.Quote("..."))
}

// requestExpiredReason and requestRevokedReason are what the person is told.
func requestExpiredReason(id string) string { return "your access request " + id + " expired" }
func requestRevokedReason(id string) string { return "your access request " + id + " was revoked" }

// enforceRequestWindow ends the session when its request's window does; it
// returns what stops that timer and any a recheck adopted since
// (adoptRequest).
func (s *session) enforceRequestWindow() (stop func()) {
	if s.requestID != "" {
		s.startWindow(s.requestID, s.requestEnds)
	}
	return func() {
		s.windowMu.Lock()
		stops := s.windowStops
		s.windowStops, s.windowClosed = nil, true
		s.windowMu.Unlock()
		for _, f := range stops {
			f()
		}
	}
}

// adoptRequest ends the session when request id's window does, at ends: a
// session opened under a group grant that now stands on the request alone
// must not outlive the request's window, on this node's clock, whether or
// not the leader writes the expiry.
func (s *session) adoptRequest(id string, ends time.Time) { s.startWindow(id, ends) }

// startWindow starts a timer that ends the session at ends, unless the
// window timers have been stopped already (the session is ending).
func (s *session) startWindow(id string, ends time.Time) {
	s.windowMu.Lock()
	defer s.windowMu.Unlock()
	if s.windowClosed {
		return
	}
	t := s.clock.NewTimer(ends.Sub(s.clock.Now()))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer t.Stop()
		select {
		case <-t.C():
			s.end(requestExpiredReason(id))
		case <-done:
		}
	}()
	s.windowStops = append(s.windowStops, func() { close(done); <-finished })
}

// requestEnded is why a session under a request may no longer run: the
// request was revoked, or its window has passed on this node's clock.
func (p *Proxy) requestEnded(st *raftstore.State, s *liveSession) string {
	if s.requestID == "" {
		return ""
	}
	_, r, err := st.AccessRequestByID(nil, s.requestID)
	if err != nil {
		return ""
	}
	switch {
	case r == nil || r.State == raftstore.RequestRevoked:
		return requestRevokedReason(s.requestID)
	case !r.ActiveAt(p.clock.Now()):
		return requestExpiredReason(s.requestID)
	}
	return ""
}

// requestAccountIndex is accountIndex for a person whose access to srv's
// project is an approved request for their own login: the index of the
// approval (the record's last change while it is approved), or the
// account's own change if later; 0 without such a request.
func requestAccountIndex(ws memdb.WatchSet, st *raftstore.State, user *raftstore.User, srv *raftstore.Server, now time.Time) (uint64, error) {
	_, reqs, err := st.AccessRequestsByUser(ws, user.ID)
	if err != nil {
		return 0, err
	}
	var since uint64
	for _, r := range reqs {
		if r.Project != srv.Project || r.Login != user.UnixName || !r.ActiveAt(now) {
			continue
		}
		if since == 0 || r.ModifyIndex < since {
			since = r.ModifyIndex
		}
	}
	if since == 0 {
		return 0, nil
	}
	return max(since, user.AccountIndex), nil
}
