package jump

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	gwaccess "github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/raftstore"
)

// A session under an access request ends when the request's window does,
// on this node's clock, with the reason the person is shown; not a moment
// before.
func TestRequestWindowEndsSession(t *testing.T) {
	clk := newFakeClock()
	s, ended := limitsSession(clk, 0, 0)
	s.requestID, s.requestEnds = "r-abcdefgh", clk.Now().Add(10*time.Minute)
	stop := s.enforceRequestWindow()
	defer stop()
	clk.advanceTo(s.requestEnds.Add(-time.Second))
	if msgs, _ := ended(); len(msgs) != 0 {
		t.Fatalf("ended before the window's end: %v", msgs)
	}
	clk.advanceTo(s.requestEnds)
	msgs, at := ended()
	if len(msgs) != 1 || msgs[0] != "Rampart: session ended: your access request r-abcdefgh expired" || !at[0].Equal(s.requestEnds) {
		t.Fatalf("ended with %v at %v", msgs, at)
	}
}

// The refusal for want of a grant tells the person how to ask, in ASCII.
func TestRefusalTextAsksForRequest(t *testing.T) {
	p := &Proxy{cfg: Config{RequestCommand: "ssh -p 2222 bastion"}}
	err := &gwaccess.NeedRequestError{Server: "web-1", Project: "web", MaxDuration: 8 * time.Hour}
	want := `no access to web-1 (project web). Ask for it: ssh -p 2222 bastion request web --for 2h --reason "..."`
	if got := p.refusalText(err); got != want {
		t.Errorf("refusal %q, want %q", got, want)
	}
	if got := p.refusalText(errors.New("other")); got != "other" {
		t.Errorf("other refusals changed: %q", got)
	}
	for _, r := range want {
		if r > 127 {
			t.Fatalf("non-ASCII in %q", want)
		}
	}
}

// A session opened under a group grant whose grant is then removed, while
// the person holds an approved request, runs on under that request: it
// takes the request's id and ends with its window on this node's clock,
// without waiting for the leader to write the expiry.
func TestRecheckAdoptsRequestWindow(t *testing.T) {
	f := testState(t)
	now := time.Now()
	f.MustApply(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"deploy"},
			Requests: &raftstore.RequestPolicy{Approvers: []string{"ops"}}}}, Now: now},
		&raftstore.AccessRequestCreate{ID: "r-abcdefgh", Project: "web", UserID: "u1", Reason: "incident", Duration: time.Hour, Now: now},
		&raftstore.AccessRequestApprove{ID: "r-abcdefgh", By: raftstore.Decider{ID: "u2", Login: "bob"}, Now: now},
	)
	_, srv, err := f.State().ServerByID(nil, "s1")
	if err != nil || srv == nil {
		t.Fatalf("server s1: %v", err)
	}
	clk := &fakeClock{now: now}
	sess, ended := limitsSession(clk, 0, 0)
	stop := sess.enforceRequestWindow()
	defer stop()
	ls := &liveSession{id: "sess-1", userID: "u1", login: "alice", server: srv, end: sess.end, adoptRequest: sess.adoptRequest}
	p := &Proxy{clock: clk, logger: slog.New(slog.DiscardHandler)}
	if got := p.revoked(f.State(), ls); got != "" || ls.requestID != "" {
		t.Fatalf("under the grant: %q, request %q", got, ls.requestID)
	}
	// The grant goes (alice leaves eng); the request still allows her.
	f.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice", Groups: []string{"x"}}, EnsureGroups: true, Now: now})
	if got := p.revoked(f.State(), ls); got != "" {
		t.Fatalf("under the request: %q", got)
	}
	if ls.requestID != "r-abcdefgh" {
		t.Fatalf("request adopted: %q", ls.requestID)
	}
	ends := now.Add(time.Hour)
	clk.advanceTo(ends.Add(-time.Second))
	if msgs, _ := ended(); len(msgs) != 0 {
		t.Fatalf("ended before the window's end: %v", msgs)
	}
	clk.advanceTo(ends)
	msgs, at := ended()
	if len(msgs) != 1 || msgs[0] != "Rampart: session ended: your access request r-abcdefgh expired" || !at[0].Equal(ends) {
		t.Fatalf("ended with %v at %v", msgs, at)
	}
	// A revocation ends it too, now that it runs under the request.
	f.MustApply(t, &raftstore.AccessRequestRevoke{ID: "r-abcdefgh", By: raftstore.Decider{ID: "u2", Login: "bob"}, Reason: "done", Now: now})
	if got := p.revoked(f.State(), ls); got != "your access request r-abcdefgh was revoked" {
		t.Fatalf("after revocation: %q", got)
	}
}
