package frontdoor

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/raftstore"
)

// adminCase is one `ssh admin@bastion COMMAND` and what it must leave.
type adminCase struct {
	name string
	cmd  string
	code int
	// out must all be in stdout; errOut in stderr.
	out    []string
	errOut string
	// json: stdout is one JSON document (jsonLines: one per line), handed to
	// check when it is set.
	json, jsonLines bool
	check           func(t *testing.T, v any)
}

func (tc adminCase) run(t *testing.T, a *adminDoor) {
	t.Helper()
	stdout, stderr, code := run(t, a.alice, tc.cmd)
	if code != tc.code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.cmd, code, tc.code, stdout, stderr)
	}
	for _, w := range tc.out {
		if !strings.Contains(stdout, w) {
			t.Errorf("%s: stdout lacks %q:\n%s", tc.cmd, w, stdout)
		}
	}
	if tc.errOut != "" && !strings.Contains(stderr, tc.errOut) {
		t.Errorf("%s: stderr lacks %q:\n%s", tc.cmd, tc.errOut, stderr)
	}
	if tc.code == 0 && stderr != "" {
		t.Errorf("%s: stderr on success: %q", tc.cmd, stderr)
	}
	if tc.code != 0 && stdout != "" && !strings.Contains(tc.cmd, "verify") {
		t.Errorf("%s: stdout on failure: %q", tc.cmd, stdout)
	}
	switch {
	case tc.json:
		var v any
		dec := json.NewDecoder(strings.NewReader(stdout))
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("%s: not one JSON document (%v):\n%s", tc.cmd, err, stdout)
		}
		if tc.check != nil {
			tc.check(t, v)
		}
	case tc.jsonLines:
		var all []any
		for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var v any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("%s: line %q is not JSON: %v", tc.cmd, l, err)
			}
			all = append(all, v)
		}
		if tc.check != nil {
			tc.check(t, all)
		}
	}
}

// field reads a path of object keys and array indexes from decoded JSON.
func field(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func wantField(want any, path ...any) func(*testing.T, any) {
	return func(t *testing.T, v any) {
		t.Helper()
		if got := field(v, path...); got != want {
			t.Errorf("JSON %v = %v, want %v", path, got, want)
		}
	}
}

func wantLen(n int) func(*testing.T, any) {
	return func(t *testing.T, v any) {
		t.Helper()
		if s, _ := v.([]any); len(s) != n {
			t.Errorf("JSON has %d elements, want %d: %v", len(s), n, v)
		}
	}
}

// Every command of the shell over a real SSH connection, one-shot, in table
// and JSON form, then its misuses and refusals.
func TestAdminShellOneShotOverSSH(t *testing.T) {
	a := startAdminDoor(t)

	reads := []adminCase{
		{name: "whoami", cmd: "whoami", out: []string{"login:", "alice", "rampart-admins"}},
		{name: "whoami-json", cmd: "whoami --json", json: true, check: wantField("alice", "login")},
		{name: "users-ls", cmd: "users ls", out: []string{"LOGIN", "alice", "bob", "active"}},
		{name: "users-ls-json", cmd: "users ls --json", json: true, check: wantLen(2)},
		{name: "users-show", cmd: "users show bob", out: []string{"bob@example.com", "live bindings:   1", "active sessions: 1", "restart-nginx"}},
		{name: "users-show-json", cmd: "users show bob --json", json: true, check: wantField(float64(1), "active_sessions")},
		{name: "groups-ls", cmd: "groups ls", out: []string{"NAME", "eng", "rampart-admins", "web:user"}},
		{name: "groups-ls-json", cmd: "groups ls --json", json: true, check: wantLen(2)},
		{name: "groups-show", cmd: "groups show eng", out: []string{"members: alice, bob"}},
		{name: "groups-show-json", cmd: "groups show eng --json", json: true, check: wantField("web", "grants", 0, "project")},
		{name: "projects-ls", cmd: "projects ls", out: []string{"NAME", "web", "db", "web tier"}},
		{name: "projects-ls-json", cmd: "projects ls --json", json: true, check: wantLen(2)},
		{name: "projects-show", cmd: "projects show web", out: []string{"web tier", "recording:", "restart-nginx"}},
		{name: "projects-show-json", cmd: "projects show web --json", json: true, check: wantField("web", "name")},
		{name: "entitlements-ls", cmd: "entitlements ls", out: []string{"restart-nginx", "/usr/bin/systemctl restart nginx"}},
		{name: "entitlements-ls-json", cmd: "entitlements ls --json", json: true, check: wantLen(1)},
		{name: "entitlements-show", cmd: "entitlements show restart-nginx", out: []string{"nopasswd:", "web/eng"}},
		{name: "entitlements-show-json", cmd: "entitlements show restart-nginx --json", json: true, check: wantField("restart-nginx", "name")},
		{name: "servers-ls", cmd: "servers ls", out: []string{"NAME", "web-1", "db-1", "10.0.0.11:22"}},
		{name: "servers-ls-json", cmd: "servers ls --json", json: true, check: wantLen(2)},
		{name: "servers-ls-quiet", cmd: "servers ls --project web -q", out: []string{"srv-web-1\n"}},
		{name: "servers-show", cmd: "servers show web-1", out: []string{"srv-web-1", "host key 1:", "ssh-ed25519"}},
		{name: "servers-show-json", cmd: "servers show web-1 --json", json: true, check: wantField("web", "project")},
		{name: "bindings-ls", cmd: "bindings ls", out: []string{"FINGERPRINT", a.bobKey, "alice", "bob"}},
		{name: "bindings-ls-json", cmd: "bindings ls --user bob --json", json: true, check: wantField(a.bobKey, 0, "fingerprint")},
		{name: "sessions-ls", cmd: "sessions ls", out: []string{liveID, recordedID, "active", "closed"}},
		{name: "sessions-ls-json", cmd: "sessions ls --active --json", json: true, check: wantField(liveID, 0, "id")},
		{name: "sessions-show", cmd: "sessions show sess-cccc", out: []string{recordedID, "bob as bob", "client closed"}},
		{name: "sessions-show-json", cmd: "sessions show sess-cccc3333 --json", json: true, check: wantField("closed", "status")},
		{name: "ca-ls", cmd: "ca ls", out: []string{"KIND", "host-ca-1", "user-web-00000001", "signing", "SHA256:"}},
		{name: "ca-ls-json", cmd: "ca ls --json", json: true, check: wantField("host", 0, "kind")},
		{name: "service-tokens-ls", cmd: "service-tokens ls", out: []string{"ID"}},
		{name: "service-tokens-ls-json", cmd: "service-tokens ls --json", json: true, check: wantLen(0)},
		{name: "tokens-ls-json", cmd: "tokens ls --json", json: true, check: wantLen(0)},
		{name: "cluster-status", cmd: "cluster status", out: []string{"n1 (Leader)", "1 (1 voters)"}},
		{name: "cluster-status-json", cmd: "cluster status --json", json: true, check: wantField("n1", "node_id")},
		{name: "cluster-members", cmd: "cluster members", out: []string{"RAFT ADDRESS", "127.0.0.1:8300"}},
		{name: "cluster-members-json", cmd: "cluster members --json", json: true, check: wantLen(1)},
		{name: "help", cmd: "help", out: []string{"Available Commands", "ca", "sessions", "audit"}},
		{name: "replay-help", cmd: "sessions replay --help", out: []string{"--speed", "--max-wait", "--cast", "SHA-256"}},
		{name: "disable-help", cmd: "users disable --help", out: []string{"their live sessions end", "every node"}},
	}
	t.Run("reads", func(t *testing.T) {
		for _, tc := range reads {
			t.Run("ok/"+tc.name, func(t *testing.T) { tc.run(t, a) })
		}
	})
	if n := len(a.adminEvents(t)); n != 0 {
		t.Errorf("reads wrote %d admin audit events", n)
	}

	changes := []adminCase{
		{name: "projects-create-json", cmd: "projects create api --description 'the API tier' --json", json: true, check: wantField("the API tier", "description")},
		{name: "projects-set", cmd: "projects set api --cert-ttl 10m --recording on", out: []string{"project api updated"}},
		{name: "projects-grant-json", cmd: "projects grant api eng --role admin --sudo restart-nginx --json", json: true},
		{name: "projects-revoke", cmd: "projects revoke api eng", out: []string{"api"}},
		{name: "entitlements-create-json", cmd: `entitlements create reboot --command '/usr/sbin/reboot ""' --json`, json: true, check: wantField("reboot", "name")},
		{name: "entitlements-delete", cmd: "entitlements delete reboot --yes", out: []string{"reboot"}},
		{name: "servers-label-json", cmd: "servers label web-1 env=prod --json", json: true, check: wantField("prod", "labels", "env")},
		{name: "tokens-create-json", cmd: "tokens create web --ttl 1h --uses 2 --json", json: true, check: wantField("web", "project")},
		{name: "service-tokens-create", cmd: "service-tokens create ci", out: []string{"rps_"}},
		{name: "service-tokens-revoke", cmd: "service-tokens revoke ci", out: []string{"revoked"}},
		{name: "users-disable-json", cmd: "users disable bob --json", json: true, check: wantField("disabled", "status")},
		{name: "users-enable", cmd: "users enable bob", out: []string{"user bob is now active"}},
		{name: "sessions-kill", cmd: "sessions kill sess-aaaa --yes", out: []string{"session " + liveID + " ended"}},
		{name: "sessions-replay", cmd: "sessions replay sess-cccc3333 --speed 0", out: []string{"bob@web-1:~$ uptime\r\n 12:00:01 up 3 days\r\n", "end of session"}},
		{name: "sessions-replay-cast", cmd: "sessions replay sess-cccc3333 --cast", out: []string{adminCast}},
		{name: "ca-rotate-begin-json", cmd: "ca rotate web begin --json", json: true, check: wantField("staged", "phase")},
		{name: "ca-rotate-promote", cmd: "ca rotate web promote --yes", out: []string{"signs now", "ca rotate web retire"}},
		{name: "ca-rotate-retire-json", cmd: "ca rotate web retire --yes --json", json: true, check: wantField("stable", "phase")},
		{name: "cluster-snapshot", cmd: "cluster snapshot", out: []string{"snapshot taken on node n1"}},
		{name: "servers-delete", cmd: "servers delete db-1 --yes", out: []string{"server db-1 deleted"}},
		{name: "projects-delete-json", cmd: "projects delete api -y --json", json: true, check: wantField(true, "ok")},
		{name: "bindings-revoke", cmd: "bindings revoke --user bob", out: []string{"revoked the device bindings of bob (1 binding(s))"}},
		{name: "audit-ls", cmd: "audit ls --type project", out: []string{"project.create", "alice", "project.update"}},
		{name: "audit-ls-ca", cmd: "audit ls --type ca", out: []string{"ca.rotate_begin", "ca.rotate_promote", "ca.rotate_retire"}},
		{name: "audit-ls-json", cmd: "audit ls --type session.kill --json", json: true, check: wantField("session.kill", 0, "type")},
		{name: "audit-tail", cmd: "audit tail -n 2", out: []string{"binding.revoke"}},
		{name: "audit-tail-json", cmd: "audit tail -n 3 --json", jsonLines: true, check: wantLen(3)},
		{name: "audit-verify", cmd: "audit verify", out: []string{"chain intact"}},
		{name: "audit-verify-json", cmd: "audit verify --json", json: true, check: wantField(true, "ok")},
		{name: "audit-export", cmd: "audit export", jsonLines: true},
	}
	t.Run("changes", func(t *testing.T) {
		for _, tc := range changes {
			t.Run("ok/"+tc.name, func(t *testing.T) { tc.run(t, a) })
		}
	})
	// Every change is audited with the admin's identity and where from.
	wantTypes := []string{"project.create", "project.update", "grant.create", "grant.revoke",
		"entitlement.create", "entitlement.delete", "server.label", "enrollment_token.create",
		"service_token.create", "service_token.revoke", "user.disable", "user.enable",
		"session.kill", "recording.replay", "recording.replay", "ca.rotate_begin", "ca.rotate_promote", "ca.rotate_retire",
		"cluster.snapshot", "server.delete", "project.delete", "binding.revoke"}
	evs := a.adminEvents(t)
	if len(evs) != len(wantTypes) {
		t.Fatalf("%d admin audit events, want %d", len(evs), len(wantTypes))
	}
	for i, e := range evs {
		if e.Type != wantTypes[i] || e.Actor != "alice" || !strings.HasPrefix(e.Fields["source"], "127.0.0.1:") || e.Fields["admin_id"] == "" {
			t.Errorf("audit event %d: %s by %s %v, want %s by alice", i, e.Type, e.Actor, e.Fields, wantTypes[i])
		}
	}
	if _, s, _ := a.store.State().SessionByID(nil, liveID); s.Status != raftstore.SessionClosed || !strings.Contains(s.EndReason, "alice") {
		t.Errorf("killed session %+v", s)
	}

	refusals := []adminCase{
		{name: "unknown-command", cmd: "frobnicate", code: adminshell.ExitUsage, errOut: `unknown command "frobnicate"`},
		{name: "unknown-subcommand", cmd: "servers frob", code: adminshell.ExitUsage, errOut: "Run 'servers --help' for usage."},
		{name: "bad-flag", cmd: "servers ls --frob", code: adminshell.ExitUsage, errOut: "unknown flag: --frob"},
		{name: "bad-flag-value", cmd: "sessions replay sess-cccc3333 --speed fast", code: adminshell.ExitUsage, errOut: `invalid argument "fast"`},
		{name: "missing-argument", cmd: "users show", code: adminshell.ExitUsage, errOut: "users show takes USER"},
		{name: "unclosed-quote", cmd: "users show 'bob", code: adminshell.ExitUsage, errOut: "a quote is not closed"},
		{name: "shell-operator", cmd: "users ls; id", code: adminshell.ExitUsage, errOut: "shell operators"},
		{name: "missing-user", cmd: "users show nobody", code: adminshell.ExitError, errOut: `user "nobody": not found`},
		{name: "missing-server", cmd: "servers show nope --json", code: adminshell.ExitError, errOut: `server "nope": not found`},
		{name: "missing-session", cmd: "sessions replay sess-9999", code: adminshell.ExitError, errOut: `session "sess-9999": not found`},
		{name: "missing-project-ca", cmd: "ca rotate nope begin", code: adminshell.ExitError, errOut: `project "nope": not found`},
		{name: "needs-yes", cmd: "servers delete web-1", code: adminshell.ExitError, errOut: "run it again with --yes"},
		{name: "needs-yes-ca", cmd: "ca rotate host begin --json", code: 0, json: true},
		{name: "needs-yes-promote", cmd: "ca rotate host promote", code: adminshell.ExitError, errOut: "run it again with --yes"},
		{name: "tampered-recording", cmd: "sessions replay " + tamperedID, code: adminshell.ExitError, errOut: "does not match the SHA-256 recorded"},
		{name: "killed-twice", cmd: "sessions kill " + liveID + " --yes", code: adminshell.ExitError, errOut: "has already ended"},
	}
	t.Run("refusals", func(t *testing.T) {
		for _, tc := range refusals {
			t.Run("fail/"+tc.name, func(t *testing.T) { tc.run(t, a) })
		}
	})
	if _, s, _ := a.store.State().ServerByID(nil, "srv-web-1"); s == nil {
		t.Error("web-1 was deleted without --yes")
	}
}

// Someone outside the admin group gets a clear refusal, audited, one-shot
// and interactive alike, and nothing runs.
func TestAdminShellRefusesNonAdminOverSSH(t *testing.T) {
	a := startAdminDoor(t)
	stdout, stderr, code := run(t, a.bob, "users disable alice")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "bob is not an administrator (not in group \"rampart-admins\")") {
		t.Fatalf("bob one-shot: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if _, u, _ := a.store.State().UserByLogin(nil, "alice"); u.Status != raftstore.UserActive {
		t.Fatal("a non-admin's command ran")
	}
	p := startPty(t, a.bob, "")
	if code := p.wait(); code != 1 {
		t.Errorf("bob interactive: exit %d", code)
	}
	if !a.audit.has("admin_shell.refuse bob not in admin group") {
		t.Error("refusal not audited")
	}
	if n := len(a.adminEvents(t)); n != 0 {
		t.Errorf("%d admin events after refusals", n)
	}
}

// The interactive shell over a real pty: line editing, Tab completion,
// confirmation, a replay, a followed audit log stopped with Ctrl-C, a window
// change, and exit.
func TestAdminShellInteractiveOverSSH(t *testing.T) {
	a := startAdminDoor(t)
	p := startPty(t, a.alice, "")
	p.expect("Rampart admin shell on node n1. Signed in as alice.")
	p.expect(adminshell.Prompt)

	p.typ("proj\t")
	p.expect("projects ")
	p.typ("ls\r")
	out := p.expect(adminshell.Prompt)
	if !strings.Contains(out, "web tier") || !strings.Contains(out, "db") {
		t.Errorf("projects ls:\n%q", out)
	}
	p.typ("servers show w\t")
	p.expect("web-1 ")
	p.typ("\r")
	p.expect("srv-web-1")
	p.expect(adminshell.Prompt)

	// A destructive command asks; "no" changes nothing, "yes" goes ahead.
	p.typ("servers delete db-1\r")
	p.expect("Type yes to confirm: ")
	p.typ("no\r")
	p.expect("not confirmed; nothing was changed")
	p.typ("servers delete db-1\r")
	p.expect("Type yes to confirm: ")
	p.typ("yes\r")
	p.expect("server db-1 deleted")
	p.expect(adminshell.Prompt)

	p.typ("sessions replay sess-cccc3333 --speed 0\r")
	p.expect(" 12:00:01 up 3 days\r\n")
	p.expect("end of session " + recordedID)
	p.expect(adminshell.Prompt)

	p.typ("bogus\r")
	p.expect(`unknown command "bogus"`)
	p.expect(adminshell.Prompt)

	p.typ("audit tail -f -n 1\r")
	p.expect("recording.replay")
	p.expect("Ctrl-C stops")
	a.apply(t, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: time.Now(), Type: "login.accept", Actor: "carol", Fields: map[string]string{"method": "device-flow"}}}})
	p.expect("method=device-flow")
	p.typ("\x03")
	p.expect(adminshell.Prompt)

	if err := p.sess.WindowChange(50, 200); err != nil {
		t.Fatal(err)
	}
	p.typ("whoami\r")
	p.expect("user id:")
	p.expect(adminshell.Prompt)
	p.typ("exit\r")
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if !a.audit.has("admin_shell.open alice") || !a.audit.has("admin_shell.close alice") {
		t.Error("shell open/close not audited")
	}
	if evs := a.adminEvents(t); len(evs) != 2 || evs[0].Type != "server.delete" || evs[1].Type != "recording.replay" {
		t.Errorf("audit of the interactive session: %d events", len(evs))
	}

	// One command with a terminal (ssh -t admin@bastion audit tail -f):
	// Ctrl-C arrives as a byte and ends it with status 0.
	f := startPty(t, a.alice, "audit tail -f -n 1 --type login")
	f.expect("carol")
	a.apply(t, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: time.Now(), Type: "login.accept", Actor: "dave"}}})
	f.expect("dave")
	f.typ("\x03")
	if code := f.wait(); code != 0 {
		t.Errorf("audit tail -f after Ctrl-C: exit %d", code)
	}
}

// Disabling an admin closes their open shell, wherever the change is made.
func TestAdminShellClosesWhenAdminDisabled(t *testing.T) {
	a := startAdminDoor(t)
	p := startPty(t, a.alice, "")
	p.expect(adminshell.Prompt)
	_, alice, _ := a.store.State().UserByLogin(nil, "alice")
	a.apply(t, &raftstore.UserSetStatus{ID: alice.ID, Status: raftstore.UserDisabled, Now: time.Now()})
	p.expect("your account is no longer active; the admin shell is closed.")
	if code := p.wait(); code != 1 {
		t.Errorf("exit status %d", code)
	}
}
