package access

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// allowedLogins asks Authorize, for srv by name on its SSH port, which of
// candidates user may log in as.
func allowedLogins(t *testing.T, e *Evaluator, userID string, srv *raftstore.Server, candidates []string) []string {
	t.Helper()
	dec, _, err := e.Authorize(Request{UserID: userID, Host: srv.Name, Port: uint32(srv.SSHPort)})
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range candidates {
		if dec.Login(dec.User, l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// candidates are every login anyone could ask for in w: each person's unix
// name, each shared login, root.
func candidates(t *testing.T, st *raftstore.State) []string {
	t.Helper()
	out := []string{"root", "deploy"}
	_, users, err := st.Users(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		out = append(out, u.UnixName)
	}
	return out
}

// The greeting's list is exactly the servers for which Authorize allows
// some login, with the logins it allows, for every person, under each
// policy the table covers.
func TestDestinationsAgreeWithAuthorize(t *testing.T) {
	w := newWorld(t)
	unshared := webPolicy
	unshared.SharedLogins = nil
	for _, step := range []struct {
		name   string
		change raftstore.Command
	}{
		{"web-shares-deploy", nil},
		{"web-shares-nothing", &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: unshared}, Now: w.now}},
		{"eng-grant-removed", &raftstore.GrantDelete{Project: "web", Group: "eng"}},
		{"db-takes-requests", &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: jitPolicy}, Now: w.now}},
		{"alice-asks-for-db", &raftstore.AccessRequestCreate{ID: "r-alicedb", Project: "db", UserID: "u-alice", Reason: "incident", Duration: time.Hour, Now: w.now}},
		{"carol-approves", &raftstore.AccessRequestApprove{ID: "r-alicedb", By: raftstore.Decider{ID: "u-carol", Login: "carol"}, Now: w.now}},
	} {
		if step.change != nil {
			w.apply(step.change)
		}
		st := w.f.State()
		e := w.eval()
		_, users, err := st.Users(nil)
		if err != nil {
			t.Fatal(err)
		}
		_, servers, err := st.Servers(nil)
		if err != nil {
			t.Fatal(err)
		}
		logins := candidates(t, st)
		for _, u := range users {
			t.Run(step.name+"/"+u.Login, func(t *testing.T) {
				dests, err := e.Destinations(u)
				if err != nil {
					t.Fatal(err)
				}
				listed := map[string][]string{}
				for _, d := range dests {
					listed[d.Server.Name] = d.Logins
					if d.Project != d.Server.Project {
						t.Errorf("%s listed under project %s", d.Server.Name, d.Project)
					}
				}
				for _, srv := range servers {
					want := allowedLogins(t, e, u.ID, srv, logins)
					got := slices.Clone(listed[srv.Name])
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s: greeting lists logins %v, Authorize allows %v", srv.Name, got, want)
					}
				}
			})
		}
	}
}

// The people an agent keeps active accounts for are exactly those
// Authorize lets in as their own unix name on the project's servers; the
// others it holds are locked (disabled or deleted), and anyone it does not
// hold is refused by the jump. The shared logins it is given are the ones
// a member may use.
func TestAgentViewAgreesWithAuthorize(t *testing.T) {
	w := newWorld(t)
	st := w.f.State()
	e := w.eval()
	_, users, err := st.Users(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, project := range []string{"web", "db"} {
		view, err := e.AgentView(nil, project, "admin")
		if err != nil {
			t.Fatal(err)
		}
		inView := map[string]string{}
		for _, au := range view.Users {
			inView[au.Name] = au.Status
		}
		_, servers, err := st.ServersByProject(nil, project)
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range servers {
			if _, err := e.DialAddr(srv); err != nil {
				continue // the node never dials it: no login to compare
			}
			for _, u := range users {
				allowed := slices.Contains(allowedLogins(t, e, u.ID, srv, []string{u.UnixName}), u.UnixName)
				status, held := inView[u.UnixName]
				if allowed != (held && status == string(raftstore.UserActive)) {
					t.Errorf("%s on %s: jump allows own login %v; agent holds %v with status %q", u.Login, srv.Name, allowed, held, status)
				}
			}
			for _, shared := range view.SharedLogins {
				for _, u := range users {
					if inView[u.UnixName] != string(raftstore.UserActive) {
						continue
					}
					if !slices.Contains(allowedLogins(t, e, u.ID, srv, []string{shared}), shared) {
						t.Errorf("%s on %s: agent is given shared login %s, the jump refuses it", u.Login, srv.Name, shared)
					}
				}
			}
		}
	}
	// What the view holds for web: alice, erin and the locked dora and
	// gus; erin's admin role adds the admin entitlement (which does not
	// exist, so only nginx's rule is sent); only eng is a unix group.
	view, err := e.AgentView(nil, "web", "admin")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range view.Users {
		got = append(got, u.Name+":"+u.Status)
		if u.Name == "erin" && !slices.Equal(u.Sudo, []string{"admin", "nginx"}) {
			t.Errorf("erin's sudo %v", u.Sudo)
		}
		if u.Name == "erin" && !slices.Equal(u.Groups, []string{"eng"}) {
			t.Errorf("erin's unix groups %v", u.Groups)
		}
	}
	want := []string{"alice:active", "dora:disabled", "erin:active", "gus:deleted"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("web's users %v, want %v", got, want)
	}
	if len(view.Groups) != 1 || view.Groups[0].Name != "eng" || len(view.Entitlements) != 1 || view.Entitlements[0].Name != "nginx" {
		t.Errorf("groups %+v, entitlements %+v", view.Groups, view.Entitlements)
	}
	if !slices.Equal(view.SharedLogins, []string{"deploy"}) || !view.AllowPersonalKeys {
		t.Errorf("shared logins %v, personal keys %v", view.SharedLogins, view.AllowPersonalKeys)
	}
}

// users show explains with the same decision: the logins per project are
// the greeting's, a disabled person keeps their grants but is told why
// they reach nothing, and only unexpired bindings count.
func TestExplainAgreesWithAuthorize(t *testing.T) {
	w := newWorld(t)
	st := w.f.State()
	e := w.eval()
	_, users, err := st.Users(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		x, err := e.Explain(u)
		if err != nil {
			t.Fatal(err)
		}
		dests, err := e.Destinations(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range x.Projects {
			_, servers, err := st.ServersByProject(nil, p.Project)
			if err != nil {
				t.Fatal(err)
			}
			srv := servers[0]
			_, err = e.ServerAccess(u, srv)
			if !errors.Is(err, p.Refused) && (err != nil || p.Refused != nil) {
				t.Errorf("%s/%s: explained %v, ServerAccess says %v", u.Login, p.Project, p.Refused, err)
			}
			for _, d := range dests {
				if d.Project == p.Project && !slices.Equal(d.Logins, p.Logins) {
					t.Errorf("%s/%s: explained logins %v, greeting %v", u.Login, p.Project, p.Logins, d.Logins)
				}
			}
		}
	}
	_, dora, _ := st.UserByID(nil, "u-dora")
	x, err := e.Explain(dora)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Grants) != 1 || x.Grants[0].ID != "web/eng" || len(x.Projects) != 1 || !errors.Is(x.Projects[0].Refused, ErrUserInactive) {
		t.Errorf("disabled dora: %+v", x)
	}
	_, erin, _ := st.UserByID(nil, "u-erin")
	if x, err = e.Explain(erin); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range x.Grants {
		ids = append(ids, g.ID)
	}
	if !slices.Equal(ids, []string{"db/dba", "web/Web Admins", "web/eng"}) {
		t.Errorf("erin's grants %v, want them ordered by id", ids)
	}
	_, alice, _ := st.UserByID(nil, "u-alice")
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{w.now, 1}, {w.binding.ExpiresAt, 0}} {
		x, err := New(st, nil, func() time.Time { return tc.at }).Explain(alice)
		if err != nil {
			t.Fatal(err)
		}
		if x.LiveBindings != tc.want {
			t.Errorf("at %s: %d live bindings, want %d", tc.at, x.LiveBindings, tc.want)
		}
	}
}
