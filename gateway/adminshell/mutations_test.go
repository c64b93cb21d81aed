package adminshell

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Every change, each on a fresh store: its effect, its message, and the audit
// event it writes with the admin's identity.
func TestMutations(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		out    string
		fields map[string]string
		check  func(t *testing.T, h *harness)
	}{
		{"ok/users-disable", []string{"users", "disable", "bob"}, "user bob is now disabled",
			map[string]string{"user": "bob", "user_id": "sub-bob"},
			func(t *testing.T, h *harness) { wantUserStatus(t, h, "sub-bob", raftstore.UserDisabled) }},
		{"ok/users-enable", []string{"users", "enable", "carol"}, "user carol is now active",
			map[string]string{"user": "carol"},
			func(t *testing.T, h *harness) { wantUserStatus(t, h, "sub-carol", raftstore.UserActive) }},
		{"ok/users-delete", []string{"users", "delete", "bob", "--yes"}, "user bob deleted (1 device binding(s) revoked)",
			map[string]string{"user": "bob", "bindings_revoked": "1"},
			func(t *testing.T, h *harness) {
				wantUserStatus(t, h, "sub-bob", raftstore.UserDeleted)
				if _, bs, _ := h.store.State().BindingsByUser(nil, "sub-bob"); len(bs) != 0 {
					t.Errorf("bindings left: %d", len(bs))
				}
			}},
		{"ok/projects-create", []string{"projects", "create", "api", "--description", "API tier", "--cert-ttl", "10m", "--recording", "on",
			"--shared-logins", "deploy,www", "--allow-agent-forward"}, "project api created",
			map[string]string{"project": "api"},
			func(t *testing.T, h *harness) {
				p := wantProject(t, h, "api")
				s := p.Settings
				if p.Description != "API tier" || s.CertTTL != 10*time.Minute || !s.Recording || !s.AllowAgentForward || s.AllowPersonalKeys ||
					s.AllowLocalForward || !slices.Equal(s.SharedLogins, []string{"deploy", "www"}) {
					t.Errorf("project %+v", p)
				}
			}},
		// The README promises that every session is recorded: a new
		// project records unless told otherwise.
		{"ok/projects-create-records-by-default", []string{"projects", "create", "api"}, "project api created",
			map[string]string{"project": "api"},
			func(t *testing.T, h *harness) {
				if p := wantProject(t, h, "api"); !p.Settings.Recording {
					t.Errorf("new project without --recording: settings %+v, want recording on", p.Settings)
				}
			}},
		{"ok/projects-create-recording-off", []string{"projects", "create", "api", "--recording", "off"}, "project api created",
			map[string]string{"project": "api"},
			func(t *testing.T, h *harness) {
				if p := wantProject(t, h, "api"); p.Settings.Recording {
					t.Errorf("--recording off: settings %+v", p.Settings)
				}
			}},
		{"ok/projects-set", []string{"projects", "set", "web", "--recording", "off", "--record-input", "--recording-fail-open",
			"--allow-local-forward=false", "--allow-remote-forward", "--idle-timeout", "15m", "--max-session", "8h", "--shared-logins", "deploy", "--allow-personal-keys"},
			"project web updated", map[string]string{"project": "web"},
			func(t *testing.T, h *harness) {
				p := wantProject(t, h, "web")
				s := p.Settings
				if s.Recording || !s.RecordInput || !s.RecordingFailOpen || s.AllowLocalForward || !s.AllowRemoteForward ||
					s.IdleTimeout != 15*time.Minute || s.MaxSessionDuration != 8*time.Hour || !slices.Equal(s.SharedLogins, []string{"deploy"}) ||
					!s.AllowPersonalKeys {
					t.Errorf("settings %+v", s)
				}
				if p.Description != "web tier" {
					t.Errorf("description changed though not given: %q", p.Description)
				}
			}},
		{"ok/projects-set-clear-logins", []string{"projects", "set", "web", "--shared-logins", ""}, "project web updated", nil,
			func(t *testing.T, h *harness) {
				if p := wantProject(t, h, "web"); len(p.Settings.SharedLogins) != 0 {
					t.Errorf("shared logins %v", p.Settings.SharedLogins)
				}
			}},
		{"ok/projects-delete", []string{"projects", "delete", "empty", "--yes"}, "project empty deleted",
			map[string]string{"project": "empty"},
			func(t *testing.T, h *harness) {
				if _, p, _ := h.store.State().ProjectByName(nil, "empty"); p != nil {
					t.Error("project still there")
				}
			}},
		{"ok/projects-grant", []string{"projects", "grant", "db", "eng", "--role", "admin", "--sudo", "restart-nginx"},
			"group eng granted admin in project db (sudo: restart-nginx)",
			map[string]string{"project": "db", "group": "eng", "role": "admin", "sudo": "restart-nginx"},
			func(t *testing.T, h *harness) {
				_, gs, _ := h.store.State().GrantsByProject(nil, "db")
				if len(gs) != 2 || gs[0].Group != "eng" || gs[0].Role != raftstore.GrantAdmin || !slices.Equal(gs[0].Sudo, []string{"restart-nginx"}) {
					t.Errorf("grants %+v", gs)
				}
			}},
		{"ok/projects-revoke", []string{"projects", "revoke", "web", "eng"}, "group eng no longer has access to project web",
			map[string]string{"project": "web", "group": "eng"},
			func(t *testing.T, h *harness) {
				if _, gs, _ := h.store.State().GrantsByProject(nil, "web"); len(gs) != 0 {
					t.Errorf("grants left %+v", gs)
				}
			}},
		{"ok/entitlements-create", []string{"entitlements", "create", "deploy", "--command", `/usr/bin/systemctl restart "app"`,
			"--command", `/usr/bin/uptime ""`, "--command", "/usr/bin/journalctl", "--run-as", "deploy", "--nopasswd", "--noexec",
			"--env-keep", "TZ,LANG"}, "entitlement deploy created", map[string]string{"entitlement": "deploy"},
			func(t *testing.T, h *harness) {
				_, e, _ := h.store.State().EntitlementByName(nil, "deploy")
				if e == nil || e.RunAs != "deploy" || !e.NoPasswd || !e.NoExec || e.SetEnv || !slices.Equal(e.EnvKeep, []string{"LANG", "TZ"}) {
					t.Fatalf("entitlement %+v", e)
				}
				c := e.Commands
				if len(c) != 3 || c[0].Path != "/usr/bin/systemctl" || !slices.Equal(c[0].Args, []string{"restart", "app"}) ||
					c[1].Path != "/usr/bin/uptime" || c[1].Args == nil || len(c[1].Args) != 0 ||
					c[2].Path != "/usr/bin/journalctl" || c[2].Args != nil {
					t.Errorf("commands %#v", c)
				}
			}},
		{"ok/entitlements-create-all", []string{"entitlements", "create", "root", "--command", "ALL"}, "entitlement root created", nil,
			func(t *testing.T, h *harness) {
				if _, e, _ := h.store.State().EntitlementByName(nil, "root"); e == nil || e.Commands[0].Path != raftstore.SudoAllCommands {
					t.Errorf("entitlement %+v", e)
				}
			}},
		{"ok/entitlements-delete", []string{"entitlements", "delete", "unused", "--yes"}, "entitlement unused deleted",
			map[string]string{"entitlement": "unused"},
			func(t *testing.T, h *harness) {
				if _, e, _ := h.store.State().EntitlementByName(nil, "unused"); e != nil {
					t.Error("entitlement still there")
				}
			}},
		{"ok/servers-delete", []string{"servers", "delete", "web-2", "--yes"}, "server web-2 deleted",
			map[string]string{"server": "web-2", "server_id": "srv-web-2", "project": "web"},
			func(t *testing.T, h *harness) {
				if _, s, _ := h.store.State().ServerByID(nil, "srv-web-2"); s != nil {
					t.Error("server still there")
				}
			}},
		{"ok/servers-label", []string{"servers", "label", "web-1", "tier=frontend", "env-"}, "server web-1 labels: role=web,tier=frontend",
			map[string]string{"server": "web-1", "labels": "role=web,tier=frontend"},
			func(t *testing.T, h *harness) {
				_, s, _ := h.store.State().ServerByID(nil, "srv-web-1")
				if s.Labels["tier"] != "frontend" || s.Labels["env"] != "" || s.Labels["role"] != "web" || s.LastSeen.IsZero() {
					t.Errorf("server %+v", s)
				}
			}},
		{"ok/tokens-revoke", []string{"tokens", "revoke", "1a1a1a1a"}, "token 1a1a1a1a1a1a revoked",
			map[string]string{"token": strings.Repeat("1a", 32)},
			func(t *testing.T, h *harness) {
				if _, tk, _ := h.store.State().TokenByHash(nil, strings.Repeat("1a", 32)); tk != nil {
					t.Error("token still there")
				}
			}},
		{"ok/service-tokens-revoke", []string{"service-tokens", "revoke", "bootstrap"}, "service token bootstrap (bootstrap) revoked",
			map[string]string{"service_token": "bootstrap"},
			func(t *testing.T, h *harness) {
				if _, ts, _ := h.store.State().ServiceTokens(nil); len(ts) != 0 {
					t.Error("service token still there")
				}
			}},
		{"ok/bindings-revoke-fingerprint", nil, "revoked binding SHA256:", map[string]string{"revoked": "1", "user_id": "sub-bob"},
			func(t *testing.T, h *harness) { wantBindings(t, h, 0) }},
		{"ok/bindings-revoke-user", []string{"bindings", "revoke", "--user", "bob"}, "revoked the device bindings of bob (1 binding(s))",
			map[string]string{"user": "bob", "revoked": "1"}, func(t *testing.T, h *harness) { wantBindings(t, h, 0) }},
		{"ok/bindings-revoke-user-none", []string{"bindings", "revoke", "--user", "alice"}, "(0 binding(s))",
			map[string]string{"revoked": "0"}, func(t *testing.T, h *harness) { wantBindings(t, h, 1) }},
		{"ok/bindings-revoke-all", []string{"bindings", "revoke", "--all", "--yes"}, "revoked all device bindings (1 binding(s))",
			map[string]string{"scope": "all", "revoked": "1"}, func(t *testing.T, h *harness) { wantBindings(t, h, 0) }},
		{"ok/cluster-remove", []string{"cluster", "remove", "n2", "--yes"}, "node n2 removed from the cluster",
			map[string]string{"node": "n2", "raft_addr": "127.0.0.2:8300"},
			func(t *testing.T, h *harness) {
				if !slices.Equal(h.store.removed, []string{"n2"}) {
					t.Errorf("removed %v", h.store.removed)
				}
				if _, n, _ := h.store.State().NodeByID(nil, "n2"); n != nil {
					t.Error("node record still there")
				}
			}},
		{"ok/cluster-snapshot", []string{"cluster", "snapshot"}, "snapshot taken on node n1", map[string]string{"node": "n1"},
			func(t *testing.T, h *harness) {
				if h.store.snapshots != 1 {
					t.Errorf("%d snapshots", h.store.snapshots)
				}
			}},
		{"ok/cluster-transfer-leadership", []string{"cluster", "transfer-leadership"}, "leadership transferred away from node n1", nil,
			func(t *testing.T, h *harness) {
				if h.store.transfers != 1 {
					t.Errorf("%d transfers", h.store.transfers)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			args := tc.args
			if args == nil {
				args = []string{"bindings", "revoke", h.bobKey}
			}
			before := len(h.auditEvents())
			r := h.run(args...)
			if r.code != ExitOK || !strings.Contains(r.stdout, tc.out) {
				t.Fatalf("want %q; %s", tc.out, r)
			}
			tc.check(t, h)
			evs := h.auditEvents()
			if len(evs) != before+1 {
				t.Fatalf("%d audit events written, want 1", len(evs)-before)
			}
			wantAudit(t, h, evs[len(evs)-1], args, tc.fields)
		})
	}
}

// commandEvents are the audit event types of the shell's commands that
// change things.
var commandEvents = map[string]string{
	"projects create": control.EventProjectCreate, "projects set": control.EventProjectUpdate,
	"projects delete": control.EventProjectDelete, "projects grant": control.EventGrantCreate,
	"projects revoke": control.EventGrantRevoke, "users disable": control.EventUserDisable,
	"users enable": control.EventUserEnable, "users delete": control.EventUserDelete,
	"entitlements create": control.EventEntitlementCreate, "entitlements delete": control.EventEntitlementDelete,
	"servers register": control.EventServerRegister, "servers delete": control.EventServerDelete,
	"servers label": control.EventServerLabel, "tokens create": control.EventTokenCreate,
	"tokens revoke": control.EventTokenRevoke, "service-tokens create": control.EventServiceTokenCreate,
	"service-tokens revoke": control.EventServiceTokenRevoke, "bindings revoke": control.EventBindingRevoke,
	"sessions kill": control.EventSessionKill, "cluster remove": control.EventNodeRemove,
	"cluster backup": control.EventClusterBackup, "cluster snapshot": EventClusterSnapshot,
	"cluster transfer-leadership": EventLeadershipTransfer,
	"scim tokens":                 control.EventServiceTokenCreate,
}

// wantAudit checks an event is the admin's record of args.
func wantAudit(t *testing.T, h *harness, e *raftstore.AuditEvent, args []string, fields map[string]string) {
	t.Helper()
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(path) == 2 {
			break
		}
		path = append(path, a)
	}
	if want := commandEvents[strings.Join(path, " ")]; e.Type != want {
		t.Errorf("audit type %q, want %q (command %q)", e.Type, want, strings.Join(path, " "))
	}
	if e.Actor != "alice" || e.Fields["source"] != h.actor.Source || e.Fields["admin_id"] != "sub-alice" ||
		e.Fields["command"] != displayArgs(args) || !e.Time.Equal(h.now) {
		t.Errorf("audit event %+v", e)
	}
	for k, v := range fields {
		if e.Fields[k] != v {
			t.Errorf("audit field %s = %q, want %q (%v)", k, e.Fields[k], v, e.Fields)
		}
	}
}

func wantUserStatus(t *testing.T, h *harness, id string, status raftstore.UserStatus) {
	t.Helper()
	if _, u, _ := h.store.State().UserByID(nil, id); u == nil || u.Status != status {
		t.Errorf("user %s: %+v, want %s", id, u, status)
	}
}

func wantProject(t *testing.T, h *harness, name string) *raftstore.Project {
	t.Helper()
	_, p, _ := h.store.State().ProjectByName(nil, name)
	if p == nil {
		t.Fatalf("no project %s", name)
	}
	return p
}

func wantBindings(t *testing.T, h *harness, n int) {
	t.Helper()
	if _, bs, _ := h.store.State().Bindings(nil); len(bs) != n {
		t.Errorf("%d bindings, want %d", len(bs), n)
	}
}

// Changes in --json form print the changed object.
func TestMutationJSON(t *testing.T) {
	h := newHarness(t)
	p := decodeJSON[map[string]any](t, h.mustRun("projects", "create", "api", "--recording", "on", "--json"))
	if s := p["settings"].(map[string]any); p["name"] != "api" || s["recording"] != true || s["cert_ttl"] != "3m0s" {
		t.Errorf("project %v", p)
	}
	u := decodeJSON[map[string]any](t, h.mustRun("users", "disable", "bob", "--json"))
	if u["status"] != "disabled" {
		t.Errorf("user %v", u)
	}
	m := decodeJSON[map[string]any](t, h.mustRun("projects", "revoke", "web", "eng", "--json"))
	if m["ok"] != true {
		t.Errorf("message %v", m)
	}
	b := decodeJSON[map[string]any](t, h.mustRun("bindings", "revoke", "--user", "bob", "--json"))
	if b["revoked"] != 1.0 {
		t.Errorf("revoke %v", b)
	}
}

// Destructive commands run one-shot refuse without --yes, change nothing and
// audit nothing.
func TestOneShotNeedsYes(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{
		{"users", "delete", "bob"},
		{"projects", "delete", "empty"},
		{"entitlements", "delete", "unused"},
		{"servers", "delete", "web-2"},
		{"bindings", "revoke", "--all"},
		{"cluster", "remove", "n3"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			before := len(h.auditEvents())
			r := h.run(args...)
			if r.code != ExitError || !strings.Contains(r.stderr, "without confirmation: run it again with --yes to confirm") {
				t.Fatalf("%s", r)
			}
			if len(h.auditEvents()) != before {
				t.Error("a refused command was audited")
			}
		})
	}
	wantUserStatus(t, h, "sub-bob", raftstore.UserActive)
	wantProject(t, h, "empty")
	wantBindings(t, h, 1)
	if _, s, _ := h.store.State().ServerByID(nil, "srv-web-2"); s == nil {
		t.Error("server deleted")
	}
	if _, e, _ := h.store.State().EntitlementByName(nil, "unused"); e == nil {
		t.Error("entitlement deleted")
	}
	if len(h.store.removed) != 0 {
		t.Error("node removed")
	}
}

func TestTransferLeadershipOnFollower(t *testing.T) {
	h := newHarness(t)
	h.store.notLeader = true
	h.store.status.LeaderID = "n2"
	r := h.run("cluster", "transfer-leadership")
	if r.code != ExitError || !strings.Contains(r.stderr, "this node is not the leader: run it on the leader, n2") {
		t.Fatal(r)
	}
}

// A change whose audit event cannot be written is reported as a failure.
func TestUnauditedChangeFails(t *testing.T) {
	h := newHarness(t)
	h.store.failAudit(true)
	r := h.run("users", "disable", "bob")
	if r.code != ExitError || !strings.Contains(r.stderr, "the change was made, but its audit event could not be written") {
		t.Fatal(r)
	}
}

// When the leader cannot confirm a read, the local copy is shown with a
// warning that says whether it may be stale.
func TestReadWithoutLeader(t *testing.T) {
	h := newHarness(t)
	h.store.SetReadErr(raftstore.ErrNoLeader)
	r := h.run("projects", "ls", "-q")
	if r.code != ExitOK || r.stdout != "db\nempty\nweb\n" || !strings.Contains(r.stderr, "warning: cannot confirm with the leader") ||
		strings.Contains(r.stderr, "may be stale") {
		t.Fatal(r)
	}
	h.store.SetStale(true)
	r = h.run("projects", "ls", "-q")
	if r.code != ExitOK || !strings.Contains(r.stderr, "showing this node's copy, which may be stale") {
		t.Fatal(r)
	}
	// cluster status needs no leader and warns of nothing.
	if r := h.run("cluster", "status"); r.code != ExitOK || r.stderr != "" {
		t.Fatal(r)
	}
}

// Text from the IdP cannot steer the admin's terminal.
func TestControlCharactersEscaped(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftstore.UserUpsert{User: raftstore.User{ID: "sub-eve", Login: "eve\x1b[2J", UnixName: "eve",
		Groups: []string{"evil\tgroup"}}, EnsureGroups: true, Now: h.now})
	out := h.mustRun("users", "ls")
	if strings.ContainsAny(out, "\x1b\t") || !strings.Contains(out, `eve\x1b[2J`) || !strings.Contains(out, `evil\tgroup`) {
		t.Errorf("output:\n%q", out)
	}
}
