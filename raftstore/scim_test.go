package raftstore

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func getUser(t *testing.T, f *FSM, id string) *User {
	t.Helper()
	_, u, err := f.State().UserByID(nil, id)
	if err != nil || u == nil {
		t.Fatalf("user %s: %v %v", id, u, err)
	}
	return u
}

// The group rule: a person's Groups are their ID token's groups and SCIM's
// together; a sign-in replaces only the token's, a SCIM membership change
// only SCIM's; GroupsSince keeps the index a group first counted from
// either source, and AccountIndex does not move for group changes.
func TestGroupSourcesUnion(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Groups: []string{"dev", "ops"}}, EnsureGroups: true, Now: testNow})
	u := getUser(t, f, "s1")
	devSince, account := u.GroupsSince["dev"], u.AccountIndex
	mustApply(t, f, &SCIMGroupPut{Group: "dev", Linked: true, Add: []string{"s1"}, Now: testNow})
	mustApply(t, f, &SCIMGroupPut{Group: "web", Linked: true, Add: []string{"s1"}, Now: testNow})
	u = getUser(t, f, "s1")
	if !slices.Equal(u.Groups, []string{"dev", "ops", "web"}) || !slices.Equal(u.SCIMGroups, []string{"dev", "web"}) || !slices.Equal(u.TokenGroups, []string{"dev", "ops"}) {
		t.Fatalf("after SCIM adds: groups %q token %q scim %q", u.Groups, u.TokenGroups, u.SCIMGroups)
	}
	if u.GroupsSince["dev"] != devSince || u.GroupsSince["web"] == 0 || u.AccountIndex != account {
		t.Fatalf("indexes: dev since %d (was %d), web since %d, account %d (was %d)", u.GroupsSince["dev"], devSince, u.GroupsSince["web"], u.AccountIndex, account)
	}
	webSince := u.GroupsSince["web"]
	// A sign-in whose token drops dev and ops keeps SCIM's dev and web.
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Groups: []string{"qa"}}, EnsureGroups: true, Now: testNow})
	u = getUser(t, f, "s1")
	if !slices.Equal(u.Groups, []string{"dev", "qa", "web"}) || u.GroupsSince["dev"] != devSince || u.GroupsSince["web"] != webSince {
		t.Fatalf("after sign-in: groups %q since %v", u.Groups, u.GroupsSince)
	}
	// SCIM removes dev: the token no longer names it either, so it goes.
	mustApply(t, f, &SCIMGroupPut{Group: "dev", Linked: true, Remove: []string{"s1"}, Now: testNow})
	if u = getUser(t, f, "s1"); !slices.Equal(u.Groups, []string{"qa", "web"}) {
		t.Fatalf("after SCIM remove: %q", u.Groups)
	}
	if _, in, _ := f.State().UsersInGroup(nil, "dev"); len(in) != 0 {
		t.Fatalf("dev still lists %d members", len(in))
	}
	// SCIM deletes web: it loses its SCIM members and leaves SCIM's view,
	// but stays a group with its gid.
	mustApply(t, f, &SCIMGroupPut{Group: "web", Linked: false, Now: testNow})
	_, g, _ := f.State().GroupByName(nil, "web")
	if u = getUser(t, f, "s1"); !slices.Equal(u.Groups, []string{"qa"}) || g == nil || g.SCIM || g.GID == 0 {
		t.Fatalf("after SCIM delete: groups %q group %+v", u.Groups, g)
	}
	// Replace sets the membership exactly.
	mustApply(t, f, &UserUpsert{User: User{ID: "s2", Login: "bob", UnixName: "bob"}, Now: testNow})
	mustApply(t, f, &SCIMGroupPut{Group: "ops", Linked: true, Replace: true, Members: []string{"s1", "s2"}, Now: testNow})
	mustApply(t, f, &SCIMGroupPut{Group: "ops", Linked: true, Replace: true, Members: []string{"s2"}, Now: testNow})
	if ms, _ := f.State().SCIMMembersOf("ops"); len(ms) != 1 || ms[0].ID != "s2" {
		t.Fatalf("ops SCIM members %v", ms)
	}
	if res := apply(t, f, &SCIMGroupPut{Group: "ops", Linked: true, Add: []string{"nobody"}, Now: testNow}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("unknown member: %v", res.Err)
	}
}

// A record written before the split (Groups alone) keeps its groups as the
// token's when SCIM first touches it.
func TestGroupSourcesLegacyRecord(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice"}, Now: testNow})
	// Rewrite it as an old node would have stored it.
	u := *getUser(t, f, "s1")
	u.Groups, u.TokenGroups = []string{"old"}, nil
	tx := f.State().db.Txn(true)
	if err := tx.Insert(tableUsers, &u); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	mustApply(t, f, &SCIMGroupPut{Group: "new", Linked: true, Add: []string{"s1"}, Now: testNow})
	if got := getUser(t, f, "s1"); !slices.Equal(got.Groups, []string{"new", "old"}) || !slices.Equal(got.GroupsFromToken(), []string{"old"}) {
		t.Fatalf("legacy record: groups %q token %q", got.Groups, got.GroupsFromToken())
	}
}

// SCIM's push of a person keeps what sign-in owns, never moves an
// externalId, and rewrites SCIMSeenAt for an unchanged push only when it is
// a minute old.
func TestUserSCIMPut(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserSCIMPut{User: User{ID: "scim-1", Login: "carol@x", Email: "carol@x", ExternalID: "ext-c", UnixName: "carol"}, Now: testNow})
	u := getUser(t, f, "scim-1")
	if !u.PendingSCIM() || u.UID == 0 || u.Status != UserActive || !u.SCIMSeenAt.Equal(testNow) {
		t.Fatalf("created: %+v", u)
	}
	if _, x, _ := f.State().UserByExternalID(nil, "ext-c"); x == nil || x.ID != "scim-1" {
		t.Fatalf("by external id: %v", x)
	}
	if _, x, _ := f.State().UserBySubject(nil, "scim-1"); x != nil {
		t.Fatal("a record awaiting adoption was found by its id as a subject")
	}
	before := f.State().LatestIndex()
	mustApply(t, f, &UserSCIMPut{User: User{ID: "scim-1", Login: "carol@x", Email: "carol@x"}, Now: testNow.Add(30 * time.Second)})
	if f.State().LatestIndex() != before {
		t.Fatal("an unchanged push within a minute was written")
	}
	mustApply(t, f, &UserSCIMPut{User: User{ID: "scim-1", Login: "carol@x", Email: "carol@x"}, Now: testNow.Add(2 * time.Minute)})
	if u = getUser(t, f, "scim-1"); !u.SCIMSeenAt.Equal(testNow.Add(2*time.Minute)) || u.ExternalID != "ext-c" {
		t.Fatalf("a minute later: seen %s external %q", u.SCIMSeenAt, u.ExternalID)
	}
	if res := apply(t, f, &UserSCIMPut{User: User{ID: "scim-1", Login: "carol@x", ExternalID: "ext-other"}, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("moved externalId: %v", res.Err)
	}
	// Another record cannot take the same externalId.
	if res := apply(t, f, &UserSCIMPut{User: User{ID: "scim-2", Login: "mallory", ExternalID: "ext-c", UnixName: "mallory"}, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("duplicate externalId: %v", res.Err)
	}
	// A sign-in adopts it: its subject is recorded; SCIM's groups stay.
	mustApply(t, f, &SCIMGroupPut{Group: "dev", Linked: true, Add: []string{"scim-1"}, Now: testNow})
	mustApply(t, f, &UserUpsert{User: User{ID: "scim-1", Subject: "sub-c", Login: "carol", UnixName: "carol", Groups: []string{"ops"}, Sources: []string{SourceSignIn}}, Now: testNow})
	if _, x, _ := f.State().UserBySubject(nil, "sub-c"); x == nil || x.ID != "scim-1" || !slices.Equal(x.Groups, []string{"dev", "ops"}) || x.PendingSCIM() {
		t.Fatalf("adopted: %+v", x)
	}
	// A SCIM push never replaces the subject, nor a sign-in another's.
	mustApply(t, f, &UserUpsert{User: User{ID: "scim-1", Subject: "sub-other", Login: "carol", UnixName: "carol", Groups: []string{"ops"}}, Now: testNow})
	if u = getUser(t, f, "scim-1"); u.Subject != "sub-c" {
		t.Fatalf("subject moved to %q", u.Subject)
	}
}
