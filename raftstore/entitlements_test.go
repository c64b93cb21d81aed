package raftstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-memdb"
)

func TestEntitlementValidate(t *testing.T) {
	cmd := func(path string, args ...string) []SudoCommand { return []SudoCommand{{Path: path, Args: args}} }
	restart := cmd("/usr/bin/systemctl", "restart", "nginx")
	cases := []struct {
		name string
		ent  Entitlement
		ok   bool
	}{
		{name: "ok/command-with-args", ent: Entitlement{Name: "restart-nginx", Commands: restart}, ok: true},
		{name: "ok/any-args", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: "/usr/bin/journalctl"}}}, ok: true},
		{name: "ok/no-args", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: "/usr/sbin/reboot", Args: []string{}}}}, ok: true},
		{name: "ok/all-commands", ent: Entitlement{Name: "root_all", Commands: []SudoCommand{{Path: SudoAllCommands}}, NoPasswd: true}, ok: true},
		{name: "ok/equals-in-arg", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/tool", "KEY=value")}, ok: true},
		{name: "ok/option-with-value", ent: Entitlement{Name: "e", Commands: cmd("/usr/local/bin/deploy", "--env=prod", "-v")}, ok: true},
		{name: "ok/path-chars", ent: Entitlement{Name: "e", Commands: cmd("/opt/app-1.2/bin/run_it+x@y~")}, ok: true},
		{name: "ok/run-as-env-keep", ent: Entitlement{Name: "e", Commands: restart, RunAs: "postgres", EnvKeep: []string{"PGDATA", "http_proxy"}, NoExec: true, SetEnv: true}, ok: true},
		{name: "ok/name-63", ent: Entitlement{Name: strings.Repeat("a", 63), Commands: restart}, ok: true},
		{name: "fail/name-empty", ent: Entitlement{Commands: restart}},
		{name: "fail/name-uppercase", ent: Entitlement{Name: "Restart", Commands: restart}},
		{name: "fail/name-64", ent: Entitlement{Name: strings.Repeat("a", 64), Commands: restart}},
		{name: "fail/name-leading-underscore", ent: Entitlement{Name: "_x", Commands: restart}},
		{name: "fail/no-commands", ent: Entitlement{Name: "e"}},
		{name: "fail/relative-path", ent: Entitlement{Name: "e", Commands: cmd("systemctl")}},
		{name: "fail/sudoedit", ent: Entitlement{Name: "e", Commands: cmd("sudoedit", "/etc/hosts")}},
		{name: "fail/root-dir", ent: Entitlement{Name: "e", Commands: cmd("/")}},
		{name: "fail/directory-trailing-slash", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/")}},
		{name: "fail/double-slash", ent: Entitlement{Name: "e", Commands: cmd("/usr//bin/ls")}},
		{name: "fail/dot-dot", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/../../bin/sh")}},
		{name: "fail/dot", ent: Entitlement{Name: "e", Commands: cmd("/usr/./bin/ls")}},
		{name: "fail/path-space", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/ls -la")}},
		{name: "fail/path-tab", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/ls\t")}},
		{name: "fail/path-newline-injection", ent: Entitlement{Name: "e", Commands: cmd("/bin/true\nALL ALL=(ALL) NOPASSWD: ALL")}},
		{name: "fail/path-comma", ent: Entitlement{Name: "e", Commands: cmd("/bin/true,/bin/sh")}},
		{name: "fail/path-colon", ent: Entitlement{Name: "e", Commands: cmd("/bin/a:b")}},
		{name: "fail/path-equals", ent: Entitlement{Name: "e", Commands: cmd("/bin/a=b")}},
		{name: "fail/path-backslash", ent: Entitlement{Name: "e", Commands: cmd(`/bin/a\,b`)}},
		{name: "fail/path-hash", ent: Entitlement{Name: "e", Commands: cmd("/bin/a#b")}},
		{name: "fail/path-glob", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/*")}},
		{name: "fail/path-question", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/l?")}},
		{name: "fail/path-bracket", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/[a-z]s")}},
		{name: "fail/path-all-lowercase-dir", ent: Entitlement{Name: "e", Commands: cmd("/ALL/")}},
		{name: "fail/path-non-ascii", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/caf\u00e9")}},
		{name: "fail/all-with-other-command", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: SudoAllCommands}, {Path: "/bin/ls"}}}},
		{name: "fail/all-with-args", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: SudoAllCommands, Args: []string{"x"}}}}},
		{name: "fail/all-with-empty-args", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: SudoAllCommands, Args: []string{}}}}},
		{name: "fail/all-lowercase", ent: Entitlement{Name: "e", Commands: cmd("all")}},
		{name: "fail/arg-newline-injection", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "x\nALL ALL=(ALL) NOPASSWD: ALL")}},
		{name: "fail/arg-carriage-return", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "x\r")}},
		{name: "fail/arg-nul", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "x\x00")}},
		{name: "fail/arg-comma", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "a,/bin/sh")}},
		{name: "fail/arg-colon", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "a:b")}},
		{name: "fail/arg-backslash", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", `a\`)}},
		{name: "fail/arg-hash-comment-widens", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "#")}},
		{name: "fail/arg-quote-empty-marker", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", `""`)}},
		{name: "fail/arg-glob", ent: Entitlement{Name: "e", Commands: cmd("/bin/cat", "/var/log/*")}},
		{name: "fail/arg-bracket", ent: Entitlement{Name: "e", Commands: cmd("/bin/cat", "[ab]")}},
		{name: "fail/arg-space", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "a b")}},
		{name: "fail/arg-empty", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "")}},
		{name: "fail/first-arg-regex", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "^.*$")}},
		{name: "fail/too-long", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", strings.Repeat("a", 1020))}},
		{name: "fail/run-as-bad", ent: Entitlement{Name: "e", Commands: restart, RunAs: "ALL"}},
		{name: "fail/run-as-injection", ent: Entitlement{Name: "e", Commands: restart, RunAs: "root) ALL"}},
		{name: "fail/env-keep-bad-name", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"A B"}}},
		{name: "fail/env-keep-starts-digit", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"1A"}}},
		{name: "fail/env-keep-equals", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"A=1"}}},
		{name: "fail/env-keep-ld-preload", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"LD_PRELOAD"}}},
		{name: "fail/env-keep-path", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"PATH"}}},
		{name: "fail/env-keep-bash-env", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"BASH_ENV"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := (&EntitlementUpsert{Entitlement: tc.ent, Now: testNow}).Validate()
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			// The FSM refuses what Validate refuses, even when it reaches the
			// log unvalidated.
			f := testFSM(t)
			res := apply(t, f, &EntitlementUpsert{Entitlement: tc.ent, Now: testNow})
			if (res.Err == nil) != tc.ok {
				t.Fatalf("apply err = %v, want ok=%v", res.Err, tc.ok)
			}
		})
	}
}

func TestEntitlementUpsert(t *testing.T) {
	f := testFSM(t)
	got := mustApply(t, f, &EntitlementUpsert{Entitlement: Entitlement{
		Name:     "svc",
		Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "app"}}, {Path: "/usr/sbin/reboot", Args: []string{}}, {Path: "/usr/bin/journalctl"}},
		EnvKeep:  []string{"TZ", "LANG", "TZ"},
	}, Now: testNow}).(*Entitlement)
	if got.RunAs != DefaultRunAs || len(got.EnvKeep) != 2 || got.EnvKeep[0] != "LANG" || !got.CreatedAt.Equal(testNow) {
		t.Fatalf("stored = %+v", got)
	}
	_, e, _ := f.State().EntitlementByName(nil, "svc")
	if e.Commands[1].Args == nil || len(e.Commands[1].Args) != 0 || e.Commands[2].Args != nil {
		t.Fatalf("nil/empty args not kept apart: %#v", e.Commands)
	}

	cases := []struct {
		name       string
		update     Entitlement
		wantChange bool
	}{
		{name: "ok/identical-is-noop", update: *e},
		{name: "ok/explicit-default-run-as-is-noop", update: Entitlement{Name: "svc", Commands: e.Commands, EnvKeep: []string{"LANG", "TZ"}, RunAs: "root"}},
		{name: "ok/empty-args-to-nil-changes", update: Entitlement{Name: "svc", Commands: []SudoCommand{e.Commands[0], {Path: "/usr/sbin/reboot"}, e.Commands[2]}, EnvKeep: e.EnvKeep}, wantChange: true},
		{name: "ok/nopasswd-changes", update: Entitlement{Name: "svc", Commands: e.Commands, EnvKeep: e.EnvKeep, NoPasswd: true}, wantChange: true},
		{name: "ok/command-order-changes", update: Entitlement{Name: "svc", Commands: []SudoCommand{e.Commands[2], e.Commands[1], e.Commands[0]}, EnvKeep: e.EnvKeep}, wantChange: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := memdb.NewWatchSet()
			if _, _, err := f.State().Entitlements(ws); err != nil {
				t.Fatal(err)
			}
			got := mustApply(t, f, &EntitlementUpsert{Entitlement: tc.update, Now: testNow}).(*Entitlement)
			if fired(ws) != tc.wantChange {
				t.Fatalf("watcher fired = %v, want %v", fired(ws), tc.wantChange)
			}
			if got.CreateIndex != e.CreateIndex {
				t.Fatalf("CreateIndex %d, want %d", got.CreateIndex, e.CreateIndex)
			}
			// Put the original back for the next case.
			mustApply(t, f, &EntitlementUpsert{Entitlement: *e, Now: testNow})
		})
	}
}

func TestEntitlementDelete(t *testing.T) {
	cases := []struct {
		name    string
		target  string
		granted bool
		wantErr error
	}{
		{name: "ok/unused", target: "restart"},
		{name: "fail/used-by-grant", target: "restart", granted: true, wantErr: ErrConflict},
		{name: "fail/missing", target: "ghost", wantErr: ErrNotFound},
		{name: "fail/bad-name", target: "Bad Name", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invEntitlement(t, f, "restart")
			invEntitlement(t, f, "logs")
			mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "dev", Sudo: []string{"logs"}}, Now: testNow})
			if tc.granted {
				mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops", Sudo: []string{"logs", "restart"}}, Now: testNow})
			}
			res := apply(t, f, &EntitlementDelete{Name: tc.target})
			if !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			_, e, _ := f.State().EntitlementByName(nil, "restart")
			if (e == nil) != (tc.wantErr == nil && tc.target == "restart") {
				t.Fatalf("entitlement restart present = %v after %s", e != nil, tc.name)
			}
		})
	}

	t.Run("ok/after-grant-dropped", func(t *testing.T) {
		f := testFSM(t)
		invProject(t, f, "web")
		invEntitlement(t, f, "restart")
		mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops", Sudo: []string{"restart"}}, Now: testNow})
		mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops"}, Now: testNow})
		mustApply(t, f, &EntitlementDelete{Name: "restart"})
		_, all, _ := f.State().Entitlements(nil)
		if len(all) != 0 {
			t.Fatalf("entitlements = %v", all)
		}
	})
}
