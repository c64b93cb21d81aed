package raftstore

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func TestGrantUpsert(t *testing.T) {
	cases := []struct {
		name     string
		grant    Grant
		wantErr  error
		wantRole GrantRole
		wantSudo []string
	}{
		{name: "ok/default-role-user", grant: Grant{Project: "web", Group: "dev"}, wantRole: GrantUser},
		{name: "ok/admin-with-sudo-sorted", grant: Grant{Project: "web", Group: "ops", Role: GrantAdmin, Sudo: []string{"restart", "logs", "restart"}}, wantRole: GrantAdmin, wantSudo: []string{"logs", "restart"}},
		{name: "ok/idp-path-group", grant: Grant{Project: "web", Group: "/org/ops team", Role: GrantUser}, wantRole: GrantUser},
		{name: "fail/missing-project", grant: Grant{Project: "nope", Group: "dev"}, wantErr: ErrNotFound},
		{name: "fail/missing-entitlement", grant: Grant{Project: "web", Group: "dev", Sudo: []string{"restart", "ghost"}}, wantErr: ErrNotFound},
		{name: "fail/bad-role", grant: Grant{Project: "web", Group: "dev", Role: "root"}, wantErr: ErrInvalid},
		{name: "fail/empty-group", grant: Grant{Project: "web"}, wantErr: ErrInvalid},
		{name: "fail/group-newline", grant: Grant{Project: "web", Group: "dev\nops"}, wantErr: ErrInvalid},
		{name: "fail/bad-project-name", grant: Grant{Project: "Web", Group: "dev"}, wantErr: ErrInvalid},
		{name: "fail/bad-sudo-name", grant: Grant{Project: "web", Group: "dev", Sudo: []string{"ALL"}}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invEntitlement(t, f, "restart")
			invEntitlement(t, f, "logs")
			before := f.State().LatestIndex()
			res := apply(t, f, &GrantUpsert{Grant: tc.grant, Now: testNow})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused write changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, gs, _ := f.State().GrantsByProject(nil, tc.grant.Project)
			if len(gs) != 1 {
				t.Fatalf("grants = %v", gs)
			}
			g := gs[0]
			if g.ID != tc.grant.Project+"/"+tc.grant.Group || g.Role != tc.wantRole || !slices.Equal(g.Sudo, tc.wantSudo) || !g.CreatedAt.Equal(testNow) {
				t.Fatalf("grant = %+v", g)
			}
		})
	}
}

func TestGrantUpsertUpdate(t *testing.T) {
	base := Grant{Project: "web", Group: "ops", Sudo: []string{"restart"}}
	cases := []struct {
		name       string
		update     Grant
		wantChange bool
	}{
		{name: "ok/identical-is-noop", update: base},
		{name: "ok/explicit-default-role-is-noop", update: Grant{Project: "web", Group: "ops", Role: GrantUser, Sudo: []string{"restart", "restart"}}},
		{name: "ok/role-changes", update: Grant{Project: "web", Group: "ops", Role: GrantAdmin, Sudo: []string{"restart"}}, wantChange: true},
		{name: "ok/sudo-removed", update: Grant{Project: "web", Group: "ops"}, wantChange: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invEntitlement(t, f, "restart")
			created := mustApply(t, f, &GrantUpsert{Grant: base, Now: testNow}).(*Grant)
			ws := memdb.NewWatchSet()
			if _, _, err := f.State().GrantsByGroup(ws, "ops"); err != nil {
				t.Fatal(err)
			}
			got := mustApply(t, f, &GrantUpsert{Grant: tc.update, Now: testNow.Add(time.Hour)}).(*Grant)
			if fired(ws) != tc.wantChange {
				t.Fatalf("watcher fired = %v, want %v", fired(ws), tc.wantChange)
			}
			if got.CreateIndex != created.CreateIndex || !got.CreatedAt.Equal(testNow) {
				t.Fatalf("creation stamps not kept: %+v", got)
			}
		})
	}
}

func TestGrantDelete(t *testing.T) {
	cases := []struct {
		name           string
		project, group string
		wantErr        error
	}{
		{name: "ok/existing", project: "web", group: "ops"},
		{name: "fail/missing-group", project: "web", group: "dev", wantErr: ErrNotFound},
		{name: "fail/missing-project", project: "db", group: "ops", wantErr: ErrNotFound},
		{name: "fail/empty-group", project: "web", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops"}, Now: testNow})
			res := apply(t, f, &GrantDelete{Project: tc.project, Group: tc.group})
			if !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			wantLeft := 0
			if tc.wantErr != nil {
				wantLeft = 1
			}
			if _, gs, _ := f.State().Grants(nil); len(gs) != wantLeft {
				t.Fatalf("grants left = %v, want %d", gs, wantLeft)
			}
		})
	}
}

func TestUserProjects(t *testing.T) {
	f := testFSM(t)
	for _, p := range []string{"web", "db", "api"} {
		invProject(t, f, p)
	}
	for _, g := range []Grant{
		{Project: "web", Group: "dev"},
		{Project: "web", Group: "ops", Role: GrantAdmin},
		{Project: "db", Group: "ops"},
		{Project: "api", Group: "other"},
	} {
		mustApply(t, f, &GrantUpsert{Grant: g, Now: testNow})
	}
	cases := []struct {
		name    string
		user    *User
		wantIDs []string
	}{
		{name: "ok/two-groups", user: &User{Status: UserActive, Groups: []string{"dev", "ops"}}, wantIDs: []string{"db/ops", "web/dev", "web/ops"}},
		{name: "ok/repeated-group-once", user: &User{Status: UserActive, Groups: []string{"ops", "ops"}}, wantIDs: []string{"db/ops", "web/ops"}},
		{name: "ok/no-groups", user: &User{Status: UserActive}},
		{name: "ok/ungranted-group", user: &User{Status: UserActive, Groups: []string{"sales"}}},
		{name: "fail/disabled-user-gets-none", user: &User{Status: UserDisabled, Groups: []string{"ops"}}},
		{name: "fail/deleted-user-gets-none", user: &User{Status: UserDeleted, Groups: []string{"ops"}}},
		{name: "fail/nil-user", user: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx, gs, err := f.State().UserProjects(nil, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range gs {
				ids = append(ids, g.ID)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Fatalf("grants = %v, want %v", ids, tc.wantIDs)
			}
			if idx != f.State().MaxIndex(tableGrants) {
				t.Fatalf("index %d, want the grants table's", idx)
			}
		})
	}

	t.Run("ok/watch-wakes-on-new-grant-of-group", func(t *testing.T) {
		u := &User{Status: UserActive, Groups: []string{"sales"}}
		ws := memdb.NewWatchSet()
		if _, _, err := f.State().UserProjects(ws, u); err != nil {
			t.Fatal(err)
		}
		mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "api", Group: "sales"}, Now: testNow})
		if !fired(ws) {
			t.Fatal("a new grant for the user's group did not wake the watcher")
		}
	})
}
