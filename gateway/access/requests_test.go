package access

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// jitPolicy lets anyone ask for db; dba approves.
var jitPolicy = raftstore.ProjectSettings{Requests: &raftstore.RequestPolicy{Approvers: []string{"dba"}, MaxDuration: 4 * time.Hour}}

// An approved request is a grant for its person alone, for its window:
// Authorize, the greeting, users show and the agent's view all hold it while
// the window is open, and none of them after, on a node whose clock has
// passed it even though no expiry was written.
func TestRequestGrantsForItsWindow(t *testing.T) {
	w := newWorld(t)
	w.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: jitPolicy}, Now: w.now})
	st := w.f.State()
	_, alice, _ := st.UserByID(nil, "u-alice")
	_, db1, _ := st.ServerByAddress(nil, "db-1")
	at := func(now time.Time) *Evaluator { return New(st, w.rule, func() time.Time { return now }) }

	_, _, err := at(w.now).Authorize(Request{UserID: "u-alice", Host: "db-1", Port: 22})
	var nr *NeedRequestError
	if !errors.As(err, &nr) || !errors.Is(err, ErrNotInProject) || nr.Error() != "no access to db-1 (project db)" || nr.SuggestedDuration() != "2h" {
		t.Fatalf("before the request: %v", err)
	}
	w.apply(&raftstore.AccessRequestCreate{ID: "r-alicedb", Project: "db", UserID: "u-alice", Reason: "incident", Duration: time.Hour, Now: w.now})
	if _, _, err := at(w.now).Authorize(Request{UserID: "u-alice", Host: "db-1", Port: 22}); !errors.As(err, &nr) {
		t.Fatalf("while pending: %v", err)
	}
	approved := w.now.Add(time.Minute)
	w.apply(&raftstore.AccessRequestApprove{ID: "r-alicedb", By: raftstore.Decider{ID: "u-carol", Login: "carol"}, Now: approved})
	end := approved.Add(time.Hour)

	for _, tc := range []struct {
		name string
		now  time.Time
		open bool
	}{{"ok/inside", approved, true}, {"ok/last-second", end.Add(-time.Second), true}, {"fail/at-expiry", end, false}, {"fail/after", end.Add(time.Hour), false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := at(tc.now)
			dec, _, err := e.Authorize(Request{UserID: "u-alice", Host: "db-1", Port: 22})
			if tc.open != (err == nil) {
				t.Fatalf("Authorize: %v", err)
			}
			if tc.open {
				if err := dec.Login(alice, "alice"); err != nil {
					t.Errorf("own login: %v", err)
				}
				if r := dec.RequestFor(alice, "alice"); r == nil || r.ID != "r-alicedb" {
					t.Errorf("RequestFor = %v", r)
				}
			} else if !errors.As(err, &nr) {
				t.Errorf("refusal %v does not say how to ask", err)
			}
			dests, err := e.Destinations(alice)
			if err != nil {
				t.Fatal(err)
			}
			listed := slices.ContainsFunc(dests, func(d Destination) bool { return d.Server.ID == db1.ID })
			if listed != tc.open {
				t.Errorf("greeting lists db-1: %v", listed)
			}
			x, err := e.Explain(alice)
			if err != nil {
				t.Fatal(err)
			}
			if (len(x.Requests) == 1) != tc.open {
				t.Errorf("users show holds %d requests", len(x.Requests))
			}
			view, err := e.AgentView(nil, "db", "")
			if err != nil {
				t.Fatal(err)
			}
			held := slices.ContainsFunc(view.Users, func(u apiUser) bool {
				return u.Name == "alice" && u.Status == "active" && len(u.Groups) == 0 && len(u.Sudo) == 0
			})
			if held != tc.open {
				t.Errorf("agent view holds alice: %v (%+v)", held, view.Users)
			}
		})
	}
	// The grant is alice's alone: erin and carol gain nothing, and eng
	// (alice's group) is not granted db.
	_, _, err = at(approved).Authorize(Request{UserID: "u-bob", Host: "db-1", Port: 22})
	if !errors.As(err, &nr) {
		t.Errorf("bob: %v", err)
	}
}

// A request for a shared login allows that login and not the person's own.
func TestRequestForSharedLogin(t *testing.T) {
	w := newWorld(t)
	web := webPolicy
	web.Requests = jitPolicy.Requests
	w.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: web}, Now: w.now},
		&raftstore.AccessRequestCreate{ID: "r-bobweb", Project: "web", UserID: "u-bob", Login: "deploy", Reason: "release", Duration: time.Hour, Now: w.now},
		&raftstore.AccessRequestApprove{ID: "r-bobweb", By: raftstore.Decider{ID: "u-carol", Login: "carol"}, Now: w.now})
	dec, _, err := w.eval().Authorize(Request{UserID: "u-bob", Host: "web-1", Port: 22})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Login(dec.User, "deploy"); err != nil {
		t.Errorf("deploy: %v", err)
	}
	if err := dec.Login(dec.User, "bob"); !errors.Is(err, ErrLoginDenied) {
		t.Errorf("own login under a request for deploy: %v", err)
	}
	view, err := w.eval().AgentView(nil, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(view.Users, func(u apiUser) bool { return u.Name == "bob" }) {
		t.Error("bob's own account is made for a request for deploy")
	}
}

type apiUser = api.AgentUser
