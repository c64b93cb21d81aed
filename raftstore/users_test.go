package raftstore

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/go-memdb"
)

func encodeUnchecked(t *testing.T, cmd Command) []byte {
	t.Helper()
	payload, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{byte(cmd.Type()), commandVersion}, payload...)
}

func TestUserUpsert(t *testing.T) {
	cases := []struct {
		name    string
		prior   []User
		shared  []string // shared logins of a project "p"
		user    User
		wantErr error
		wantUID uint32
	}{
		{name: "ok/first-user-gets-range-start", user: User{ID: "s1", Login: "alice", UnixName: "alice"}, wantUID: DefaultUIDStart},
		{name: "ok/second-user-next-uid", prior: []User{{ID: "s1", Login: "alice", UnixName: "alice"}}, user: User{ID: "s2", Login: "bob", UnixName: "bob"}, wantUID: DefaultUIDStart + 1},
		{name: "ok/update-keeps-uid", prior: []User{{ID: "s1", Login: "alice", UnixName: "alice"}}, user: User{ID: "s1", Login: "alice", UnixName: "alice", UID: 61000, Email: "a@x"}, wantUID: DefaultUIDStart},
		// Identity is the subject: a second subject may carry the same login
		// (a recycled IdP user name) under a unix name of its own.
		{name: "ok/login-shared-by-two-subjects", prior: []User{{ID: "s1", Login: "alice", UnixName: "alice"}}, user: User{ID: "s2", Login: "ALICE", UnixName: "alice-2"}, wantUID: DefaultUIDStart + 1},
		{name: "fail/unix-name-is-a-shared-login", shared: []string{"deploy"}, user: User{ID: "s2", Login: "deploy", UnixName: "deploy"}, wantErr: ErrConflict},
		{name: "ok/suffixed-beside-a-shared-login", shared: []string{"deploy"}, user: User{ID: "s2", Login: "deploy", UnixName: "deploy-2"}, wantUID: DefaultUIDStart},
		{name: "fail/unix-name-taken", prior: []User{{ID: "s1", Login: "alice", UnixName: "alice"}}, user: User{ID: "s2", Login: "al", UnixName: "alice"}, wantErr: ErrConflict},
		{name: "fail/uid-taken", prior: []User{{ID: "s1", Login: "alice", UnixName: "alice", UID: 61000}}, user: User{ID: "s2", Login: "bob", UnixName: "bob", UID: 61000}, wantErr: ErrConflict},
		{name: "fail/empty-id", user: User{Login: "x", UnixName: "x"}, wantErr: ErrInvalid},
		{name: "fail/system-uid", user: User{ID: "s3", Login: "x", UnixName: "x", UID: 0o10}, wantErr: ErrInvalid},
		{name: "fail/bad-status", user: User{ID: "s3", Login: "x", UnixName: "x", Status: "gone"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			for _, p := range tc.prior {
				mustApply(t, f, &UserUpsert{User: p, Now: testNow})
			}
			if tc.shared != nil {
				mustApply(t, f, &ProjectUpsert{Project: Project{Name: "p", Settings: ProjectSettings{SharedLogins: tc.shared}}, Now: testNow})
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &UserUpsert{User: tc.user, Now: testNow})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if got := f.State().LatestIndex(); got != before {
					t.Fatalf("refused write changed the state: index %d -> %d", before, got)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, u, err := f.State().UserByID(nil, tc.user.ID)
			if err != nil || u == nil {
				t.Fatalf("user not stored: %v", err)
			}
			if u.UID != tc.wantUID || u.Status != UserActive {
				t.Fatalf("uid=%d status=%s, want uid %d active", u.UID, u.Status, tc.wantUID)
			}
		})
	}
}

// A shared login is refused while it is a person's unix name, deleted
// people included, and a person's later refreshes are not refused.
func TestSharedLoginNeverAPerson(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "deploy", UnixName: "deploy"}, Now: testNow})
	mustApply(t, f, &UserUpsert{User: User{ID: "s2", Login: "gone", UnixName: "gone"}, Now: testNow})
	mustApply(t, f, &UserSetStatus{ID: "s2", Status: UserDeleted, Now: testNow})
	for _, name := range []string{"deploy", "gone"} {
		res := apply(t, f, &ProjectUpsert{Project: Project{Name: "p", Settings: ProjectSettings{SharedLogins: []string{"www", name}}}, Now: testNow})
		if !errors.Is(res.Err, ErrConflict) {
			t.Fatalf("shared login %s (a person's unix name): err = %v, want ErrConflict", name, res.Err)
		}
	}
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "p", Settings: ProjectSettings{SharedLogins: []string{"www"}}}, Now: testNow})
	if p, err := f.State().SharedLoginProject("www"); err != nil || p != "p" {
		t.Fatalf("SharedLoginProject(www) = %q, %v; want p", p, err)
	}
	if p, err := f.State().SharedLoginProject("deploy"); err != nil || p != "" {
		t.Fatalf("SharedLoginProject(deploy) = %q, %v; want none", p, err)
	}
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "deploy", UnixName: "deploy", Email: "d@x"}, Now: testNow})
}

func TestUserUIDNeverReused(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "a", Login: "a", UnixName: "a"}, Now: testNow})
	mustApply(t, f, &UserSetStatus{ID: "a", Status: UserDeleted, Now: testNow})
	u := mustApply(t, f, &UserUpsert{User: User{ID: "b", Login: "b", UnixName: "b"}, Now: testNow}).(*User)
	if u.UID != DefaultUIDStart+1 {
		t.Fatalf("uid %d reused or skipped; want %d", u.UID, DefaultUIDStart+1)
	}
}

func TestUserEnsureGroupsAndLookups(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "a", Login: "Alice", UnixName: "alice", Groups: []string{"ops", "dev", "ops"}}, EnsureGroups: true, Now: testNow})
	st := f.State()
	_, g, _ := st.GroupByName(nil, "ops")
	if g == nil || g.GID != DefaultGIDStart+1 {
		t.Fatalf("group ops = %+v, want gid %d (dev sorts first)", g, DefaultGIDStart+1)
	}
	_, byLogin, _ := st.UserByLogin(nil, "alice")
	_, byUnix, _ := st.UserByUnixName(nil, "alice")
	_, members, _ := st.UsersInGroup(nil, "dev")
	if byLogin == nil || byUnix == nil || len(members) != 1 || len(byLogin.Groups) != 2 {
		t.Fatalf("lookups: login=%v unix=%v members=%d groups=%v", byLogin, byUnix, len(members), byLogin.Groups)
	}
}

func TestUserSetStatusWakesWatcherOnlyOnChange(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "a", Login: "a", UnixName: "a"}, Now: testNow})
	ws := memdb.NewWatchSet()
	if _, _, err := f.State().UserByID(ws, "a"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, &UserSetStatus{ID: "a", Status: UserActive, Now: testNow})
	if fired(ws) {
		t.Fatal("no-op status change woke the watcher")
	}
	mustApply(t, f, &UserSetStatus{ID: "a", Status: UserDisabled, Now: testNow})
	if !fired(ws) {
		t.Fatal("status change did not wake the watcher")
	}
	if res := apply(t, f, &UserSetStatus{ID: "zz", Status: UserDisabled}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("missing user: err = %v", res.Err)
	}
}

// A cluster keeps the id ranges it recorded at bootstrap: a node started
// later with other ranges (such as a newer release's defaults) does not move
// them.
func TestClusterKeepsItsIDRanges(t *testing.T) {
	f := testFSM(t)
	initCmd := func(uidStart, uidEnd, gidStart, gidEnd uint32) *ClusterInit {
		return &ClusterInit{ClusterID: "c-1", Now: testNow, UIDStart: uidStart, UIDEnd: uidEnd, GIDStart: gidStart, GIDEnd: gidEnd,
			TLSCACert: "cert", TLSCAKeySealed: []byte{1}}
	}
	mustApply(t, f, initCmd(60001, 62999, 63001, 65533))
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice"}, Now: testNow})
	mustApply(t, f, initCmd(70000, 89999, 90000, 99999))
	mustApply(t, f, &UserUpsert{User: User{ID: "s2", Login: "bob", UnixName: "bob"}, Now: testNow})
	_, u, err := f.State().UserByID(nil, "s2")
	if err != nil || u == nil {
		t.Fatalf("bob: %v", err)
	}
	_, m, _ := f.State().Meta(nil)
	if u.UID != 60002 || m.UIDEnd != 62999 || m.GIDEnd != 65533 {
		t.Fatalf("bob's uid %d, meta %+v: want the ranges recorded first", u.UID, m)
	}
}

// The IdP's marks on a person survive the upserts of later sign-ins, and
// only a status change moves DisabledByIdP.
func TestUserIdPMarks(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", ExternalID: "ext-1", Sources: []string{SourceSCIM}}, Now: testNow})
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Sources: []string{SourceSignIn}}, Now: testNow})
	get := func() *User {
		t.Helper()
		_, u, err := f.State().UserByID(nil, "s1")
		if err != nil || u == nil {
			t.Fatalf("user: %v %v", u, err)
		}
		return u
	}
	if u := get(); u.ExternalID != "ext-1" || !slices.Equal(u.Sources, []string{SourceSCIM, SourceSignIn}) {
		t.Fatalf("after sign-in: external id %q sources %q, want ext-1 [scim sign-in]", u.ExternalID, u.Sources)
	}
	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserDisabled, ByIdP: true, Now: testNow})
	if u := get(); u.Status != UserDisabled || !u.DisabledByIdP {
		t.Fatalf("IdP disable: status %s by idp %v", u.Status, u.DisabledByIdP)
	}
	// A later sign-in's upsert (which carries the status it read) keeps it.
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Status: UserDisabled}, Now: testNow})
	if u := get(); !u.DisabledByIdP {
		t.Fatal("upsert dropped the IdP's disable")
	}
	// An administrator's disable takes the disable over from the IdP.
	before := f.State().LatestIndex()
	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserDisabled, Now: testNow})
	if u := get(); u.DisabledByIdP || f.State().LatestIndex() == before {
		t.Fatalf("admin disable: by idp %v, index %d -> %d", u.DisabledByIdP, before, f.State().LatestIndex())
	}
	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserDisabled, ByIdP: true, Now: testNow})
	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserActive, ByIdP: true, Now: testNow})
	if u := get(); u.Status != UserActive || u.DisabledByIdP {
		t.Fatalf("re-activated: status %s by idp %v", u.Status, u.DisabledByIdP)
	}
}
