package raftstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func TestProjectUpsert(t *testing.T) {
	cases := []struct {
		name    string
		project Project
		wantErr error
	}{
		{name: "ok/minimal", project: Project{Name: "web"}},
		{name: "ok/full-settings", project: Project{Name: "db-2", Description: "databases", Settings: ProjectSettings{
			CertTTL: 5 * time.Minute, Recording: true, RecordInput: true, AllowLocalForward: true,
			SharedLogins: []string{"deploy", "app_ro"}, IdleTimeout: 15 * time.Minute, MaxSessionDuration: 8 * time.Hour,
		}}},
		{name: "ok/cert-ttl-min", project: Project{Name: "a", Settings: ProjectSettings{CertTTL: MinCertTTL}}},
		{name: "ok/cert-ttl-max", project: Project{Name: "a", Settings: ProjectSettings{CertTTL: MaxCertTTL}}},
		{name: "ok/name-63", project: Project{Name: strings.Repeat("a", 63)}},
		{name: "fail/empty-name", project: Project{}, wantErr: ErrInvalid},
		{name: "fail/uppercase-name", project: Project{Name: "Web"}, wantErr: ErrInvalid},
		{name: "fail/leading-dash", project: Project{Name: "-web"}, wantErr: ErrInvalid},
		{name: "fail/slash", project: Project{Name: "web/prod"}, wantErr: ErrInvalid},
		{name: "fail/name-64", project: Project{Name: strings.Repeat("a", 64)}, wantErr: ErrInvalid},
		{name: "fail/cert-ttl-too-short", project: Project{Name: "a", Settings: ProjectSettings{CertTTL: 29 * time.Second}}, wantErr: ErrInvalid},
		{name: "fail/cert-ttl-too-long", project: Project{Name: "a", Settings: ProjectSettings{CertTTL: time.Hour + time.Second}}, wantErr: ErrInvalid},
		{name: "fail/cert-ttl-negative", project: Project{Name: "a", Settings: ProjectSettings{CertTTL: -time.Minute}}, wantErr: ErrInvalid},
		{name: "fail/idle-negative", project: Project{Name: "a", Settings: ProjectSettings{IdleTimeout: -1}}, wantErr: ErrInvalid},
		{name: "fail/max-session-negative", project: Project{Name: "a", Settings: ProjectSettings{MaxSessionDuration: -1}}, wantErr: ErrInvalid},
		{name: "fail/empty-shared-login", project: Project{Name: "a", Settings: ProjectSettings{SharedLogins: []string{""}}}, wantErr: ErrInvalid},
		{name: "fail/shared-login-newline", project: Project{Name: "a", Settings: ProjectSettings{SharedLogins: []string{"deploy\nroot"}}}, wantErr: ErrInvalid},
		{name: "fail/shared-login-not-posix", project: Project{Name: "a", Settings: ProjectSettings{SharedLogins: []string{"Deploy"}}}, wantErr: ErrInvalid},
		{name: "fail/description-escape", project: Project{Name: "a", Description: "\x1b[2J"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			res := apply(t, f, &ProjectUpsert{Project: tc.project, Now: testNow})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != 0 {
					t.Fatal("refused write changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, p, err := f.State().ProjectByName(nil, tc.project.Name)
			if err != nil || p == nil {
				t.Fatalf("project not stored: %v", err)
			}
			if !p.CreatedAt.Equal(testNow) || p.CreateIndex != res.Index || p.ModifyIndex != res.Index {
				t.Fatalf("stamps: %+v at index %d", p, res.Index)
			}
			if !slices.IsSorted(p.Settings.SharedLogins) {
				t.Fatalf("shared logins not sorted: %v", p.Settings.SharedLogins)
			}
		})
	}
}

func TestProjectUpsertUpdate(t *testing.T) {
	later := testNow.Add(time.Hour)
	base := Project{Name: "web", Description: "d", Settings: ProjectSettings{SharedLogins: []string{"b", "a"}}}
	cases := []struct {
		name       string
		update     Project
		wantChange bool
	}{
		{name: "ok/identical-is-noop", update: base, wantChange: false},
		{name: "ok/reordered-logins-is-noop", update: Project{Name: "web", Description: "d", Settings: ProjectSettings{SharedLogins: []string{"a", "b", "a"}}}, wantChange: false},
		{name: "ok/description-changes", update: Project{Name: "web", Description: "e", Settings: base.Settings}, wantChange: true},
		{name: "ok/settings-change", update: Project{Name: "web", Description: "d", Settings: ProjectSettings{SharedLogins: []string{"a", "b"}, Recording: true}}, wantChange: true},
		{name: "ok/ignores-command-stamps", update: Project{Name: "web", Description: "d", Settings: base.Settings, CreatedAt: later, CreateIndex: 99}, wantChange: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			created := mustApply(t, f, &ProjectUpsert{Project: base, Now: testNow}).(*Project)
			ws := memdb.NewWatchSet()
			idx, _, err := f.State().Projects(ws)
			if err != nil {
				t.Fatal(err)
			}
			res := apply(t, f, &ProjectUpsert{Project: tc.update, Now: later})
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if fired(ws) != tc.wantChange {
				t.Fatalf("watcher fired = %v, want %v", fired(ws), tc.wantChange)
			}
			newIdx, p, _ := f.State().ProjectByName(nil, "web")
			if (newIdx != idx) != tc.wantChange {
				t.Fatalf("table index %d -> %d, want change %v", idx, newIdx, tc.wantChange)
			}
			if !p.CreatedAt.Equal(testNow) || p.CreateIndex != created.CreateIndex {
				t.Fatalf("creation stamps not kept: %+v", p)
			}
			wantUpdated := testNow
			if tc.wantChange {
				wantUpdated = later
			}
			if !p.UpdatedAt.Equal(wantUpdated) {
				t.Fatalf("UpdatedAt = %s, want %s", p.UpdatedAt, wantUpdated)
			}
		})
	}
}

func TestProjectDelete(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, f *FSM)
		target  string
		wantErr error
	}{
		{name: "ok/empty-project", target: "web"},
		{name: "ok/deletes-grants-and-tokens", target: "web", setup: func(t *testing.T, f *FSM) {
			mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops"}, Now: testNow})
			mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("e"), Kind: TokenEnroll, Project: "web", UsesLeft: 1}, Now: testNow})
		}},
		{name: "ok/keeps-other-projects", target: "db", setup: func(t *testing.T, f *FSM) {
			invProject(t, f, "db")
			mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "db", Group: "ops"}, Now: testNow})
		}},
		{name: "fail/missing", target: "nope", wantErr: ErrNotFound},
		{name: "fail/has-servers", target: "web", wantErr: ErrConflict, setup: func(t *testing.T, f *FSM) {
			invServer(t, f, Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "dev"}, Now: testNow})
			mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("j"), Kind: TokenJoin, UsesLeft: 1}, Now: testNow})
			if tc.setup != nil {
				tc.setup(t, f)
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &ProjectDelete{Name: tc.target})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused delete changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			st := f.State()
			if _, p, _ := st.ProjectByName(nil, tc.target); p != nil {
				t.Fatal("project still there")
			}
			if _, g, _ := st.GrantsByProject(nil, tc.target); len(g) != 0 {
				t.Fatalf("grants left: %v", g)
			}
			if _, tk, _ := st.TokensByProject(nil, tc.target); len(tk) != 0 {
				t.Fatalf("tokens left: %v", tk)
			}
			if _, tk, _ := st.TokenByHash(nil, invTokenHash("j")); tk == nil {
				t.Fatal("join token deleted with a project")
			}
			if tc.target != "web" {
				if _, g, _ := st.GrantsByProject(nil, "web"); len(g) != 1 {
					t.Fatalf("other project's grants touched: %v", g)
				}
			}
		})
	}
}

func TestProjectsList(t *testing.T) {
	f := testFSM(t)
	for _, n := range []string{"web", "api", "db"} {
		invProject(t, f, n)
	}
	_, ps, err := f.State().Projects(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"api", "db", "web"}) {
		t.Fatalf("projects = %v", names)
	}
	if (ProjectSettings{}).EffectiveCertTTL() != DefaultCertTTL || (ProjectSettings{CertTTL: time.Minute}).EffectiveCertTTL() != time.Minute {
		t.Fatal("EffectiveCertTTL")
	}
}
