package raftstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-memdb"
)

func TestAgentAppliedSet(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "web"}, Now: testNow})
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "i-1", Project: "web", Name: "web-1", Addr: "10.0.0.1"}, Now: testNow})
	// Reports are cut to the log's index (TestAgentAppliedSetIsCutToTheLog):
	// take it past the ones below.
	for i := range 20 {
		mustApply(t, f, &ProjectUpsert{Project: Project{Name: fmt.Sprintf("p%d", i)}, Now: testNow})
	}

	ws := memdb.NewWatchSet()
	if _, a, err := f.State().AgentAppliedOf(ws, "i-1"); err != nil || a != nil {
		t.Fatalf("before any report: %+v, %v", a, err)
	}
	mustApply(t, f, &AgentAppliedSet{ServerID: "i-1", Index: 5})
	if !fired(ws) {
		t.Fatal("the first report did not wake a watcher")
	}
	for _, tc := range []struct {
		name    string
		index   uint64
		want    uint64
		wakes   bool
		wantErr error
	}{
		{name: "ok/forward", index: 9, want: 9, wakes: true},
		{name: "ok/same-is-a-no-op", index: 9, want: 9},
		{name: "ok/backwards-is-a-no-op", index: 3, want: 9},
		{name: "fail/unknown-server", index: 20, want: 9, wantErr: ErrNotFound},
		{name: "fail/zero", index: 0, want: 9, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := memdb.NewWatchSet()
			if _, _, err := f.State().AgentAppliedOf(ws, "i-1"); err != nil {
				t.Fatal(err)
			}
			id := "i-1"
			if errors.Is(tc.wantErr, ErrNotFound) {
				id = "i-2"
			}
			res := apply(t, f, &AgentAppliedSet{ServerID: id, Index: tc.index})
			if !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			if got := fired(ws); got != tc.wakes {
				t.Errorf("watcher woken: %v, want %v", got, tc.wakes)
			}
			if _, a, _ := f.State().AgentAppliedOf(nil, "i-1"); a == nil || a.Index != tc.want {
				t.Errorf("recorded %+v, want index %d", a, tc.want)
			}
		})
	}
}

// A report beyond the log (forged, or an index a long-poll answer rounded
// up) is recorded as the index of its own entry, and the record goes with
// its server.
func TestAgentAppliedSetIsCutToTheLog(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "web"}, Now: testNow})
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "i-1", Project: "web", Name: "web-1", Addr: "10.0.0.1"}, Now: testNow})
	mustApply(t, f, &AgentAppliedSet{ServerID: "i-1", Index: 1 << 40})
	entry := f.State().LatestIndex()
	if _, a, _ := f.State().AgentAppliedOf(nil, "i-1"); a == nil || a.Index != entry {
		t.Fatalf("recorded %+v, want index %d (its own entry)", a, entry)
	}
	mustApply(t, f, &ServerDelete{ID: "i-1"})
	if _, a, _ := f.State().AgentAppliedOf(nil, "i-1"); a != nil {
		t.Fatalf("after servers delete: %+v, want none", a)
	}
}

// TestUserAccountIndexes checks the indexes the jump waits for: an account
// change moves AccountIndex, a group joined gets its own index, and what
// does not change the account keeps both.
func TestUserAccountIndexes(t *testing.T) {
	f := testFSM(t)
	get := func() *User {
		t.Helper()
		_, u, err := f.State().UserByID(nil, "s1")
		if err != nil || u == nil {
			t.Fatalf("user s1: %v", err)
		}
		return u
	}
	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, Now: testNow})
	created := get()
	if created.AccountIndex != created.CreateIndex || created.GroupsSince["eng"] != created.CreateIndex {
		t.Fatalf("new user: account %d, since %v, want both at %d", created.AccountIndex, created.GroupsSince, created.CreateIndex)
	}

	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice", Email: "a@x", Groups: []string{"eng", "ops"}}, Now: testNow})
	u := get()
	if u.AccountIndex != created.AccountIndex {
		t.Errorf("an email and a group moved AccountIndex %d -> %d", created.AccountIndex, u.AccountIndex)
	}
	if u.GroupsSince["eng"] != created.CreateIndex || u.GroupsSince["ops"] != u.ModifyIndex {
		t.Errorf("since %v, want eng at %d and ops at %d", u.GroupsSince, created.CreateIndex, u.ModifyIndex)
	}

	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserDisabled, Now: testNow})
	mustApply(t, f, &UserSetStatus{ID: "s1", Status: UserActive, Now: testNow})
	if u2 := get(); u2.AccountIndex != u2.ModifyIndex || u2.GroupsSince["ops"] != u.GroupsSince["ops"] {
		t.Errorf("re-enabled: account %d (want %d), since %v", u2.AccountIndex, u2.ModifyIndex, u2.GroupsSince)
	}

	mustApply(t, f, &UserUpsert{User: User{ID: "s1", Login: "alice", UnixName: "alice2", Email: "a@x", Groups: []string{"ops"}}, Now: testNow})
	if u3 := get(); u3.AccountIndex != u3.ModifyIndex || len(u3.GroupsSince) != 1 || u3.GroupsSince["ops"] != u.GroupsSince["ops"] {
		t.Errorf("renamed, left eng: account %d (want %d), since %v", u3.AccountIndex, u3.ModifyIndex, u3.GroupsSince)
	}
}
