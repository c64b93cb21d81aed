package adminshell

import (
	"strings"
	"testing"
)

// Every read command, in table form.
func TestReadCommands(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"ok/whoami", []string{"whoami"}, []string{"alice", "sub-alice", "alice (uid 60001)", "rampart-admins", "198.51.100.7:50022", "n1"}, nil},
		{"ok/users-ls", []string{"users", "ls"}, []string{"LOGIN", "UNIX NAME", "alice", "bob", "carol", "disabled", "eng,rampart-admins"}, nil},
		{"ok/users-ls-status", []string{"users", "ls", "--status", "disabled"}, []string{"carol"}, []string{"bob"}},
		{"ok/users-ls-group", []string{"users", "ls", "--group", "eng"}, []string{"alice", "bob"}, []string{"carol"}},
		{"ok/users-show-login", []string{"users", "show", "bob"}, []string{"bob@example.com", "sub-bob", "live bindings:   1", "active sessions: 1", "web", "restart-nginx"}, nil},
		{"ok/users-show-id", []string{"users", "show", "sub-carol"}, []string{"carol", "disabled", "db", "admin"}, nil},
		{"ok/groups-ls", []string{"groups", "ls"}, []string{"NAME", "eng", "ops", "rampart-admins", "web:user", "db:admin"}, nil},
		{"ok/groups-show", []string{"groups", "show", "eng"}, []string{"alice, bob", "web", "restart-nginx"}, nil},
		{"ok/projects-ls", []string{"projects", "ls"}, []string{"NAME", "web", "db", "empty", "web tier", "-L", "3m"}, nil},
		{"ok/projects-show", []string{"projects", "show", "web"}, []string{"web tier", "servers:", "2", "enrollment tokens: 1", "recording:", "on (input off, fail closed)", "-L", "eng", "restart-nginx"}, nil},
		{"ok/entitlements-ls", []string{"entitlements", "ls"}, []string{"restart-nginx", "/usr/bin/systemctl restart nginx", "web/eng", "unused", `/usr/bin/uptime ""`}, nil},
		{"ok/entitlements-show", []string{"entitlements", "show", "restart-nginx"}, []string{"run as:", "root", "nopasswd:", "yes", "command 1:", "/usr/bin/systemctl restart nginx", "web/eng"}, nil},
		{"ok/servers-ls", []string{"servers", "ls"}, []string{"NAME", "web-1", "web-2", "db-1", "10.0.0.11:22", "env=prod,role=web", "2m ago", "never"}, nil},
		{"ok/servers-ls-project", []string{"servers", "ls", "--project", "web"}, []string{"web-1", "web-2"}, []string{"db-1"}},
		{"ok/servers-ls-label-value", []string{"servers", "ls", "--label", "env=prod"}, []string{"web-1", "db-1"}, []string{"web-2"}},
		{"ok/servers-ls-label-key", []string{"servers", "ls", "--label", "role"}, []string{"web-1"}, []string{"web-2", "db-1"}},
		{"ok/servers-ls-labels-and", []string{"servers", "ls", "--label", "env=prod", "--project", "db"}, []string{"db-1"}, []string{"web-1"}},
		{"ok/servers-show-alt-name", []string{"servers", "show", "postgres"}, []string{"db-1", "srv-db-1", "postgres", "10.0.0.21:22", "host key 1:", "ssh-ed25519"}, nil},
		{"ok/tokens-ls", []string{"tokens", "ls"}, []string{"HASH", "1a1a1a1a1a1a", "enroll", "web", "3", "2b2b2b2b2b2b", "join", "unlimited", "never", "web fleet"}, []string{strings.Repeat("1a", 32)}},
		{"ok/tokens-ls-project", []string{"tokens", "ls", "--project", "web"}, []string{"1a1a1a1a1a1a"}, []string{"2b2b2b2b2b2b"}},
		{"ok/service-tokens-ls", []string{"service-tokens", "ls"}, []string{"ID", "bootstrap", "admin", "never"}, []string{strings.Repeat("3c", 32)}},
		{"ok/bindings-ls", []string{"bindings", "ls"}, []string{"FINGERPRINT", "SHA256:", "bob", "203.0.113.5", "OpenSSH_9.6"}, nil},
		{"ok/bindings-ls-user", []string{"bindings", "ls", "--user", "alice"}, []string{"FINGERPRINT"}, []string{"SHA256:"}},
		{"ok/sessions-ls", []string{"sessions", "ls"}, []string{"sess-aaaa1111", "sess-bbbb2222", "web-1", "db-1", "active", "closed", "10m"}, nil},
		{"ok/sessions-ls-active", []string{"sessions", "ls", "--active"}, []string{"sess-aaaa1111"}, []string{"sess-bbbb2222"}},
		{"ok/sessions-ls-user", []string{"sessions", "ls", "--user", "alice"}, []string{"sess-bbbb2222"}, []string{"sess-aaaa1111"}},
		{"ok/sessions-ls-server", []string{"sessions", "ls", "--server", "web-1"}, []string{"sess-aaaa1111"}, []string{"sess-bbbb2222"}},
		{"ok/sessions-show-prefix", []string{"sessions", "show", "sess-bbbb"}, []string{"alice as alice", "db-1 (project db)", "client closed", "100 / 2000"}, nil},
		{"ok/audit-ls", []string{"audit", "ls"}, []string{"SEQ", "login", "session.open", "method=device-flow", "server=web-1"}, nil},
		{"ok/audit-ls-type", []string{"audit", "ls", "--type", "session"}, []string{"session.open"}, []string{"device-flow"}},
		{"ok/audit-ls-server", []string{"audit", "ls", "--server", "web-1"}, []string{"session.open"}, []string{"device-flow"}},
		{"ok/audit-ls-user-limit", []string{"audit", "ls", "--user", "bob", "--limit", "1"}, []string{"session.open"}, []string{"device-flow"}},
		{"ok/audit-ls-since", []string{"audit", "ls", "--since", "30m"}, []string{"SEQ"}, []string{"login"}},
		{"ok/audit-ls-since-time", []string{"audit", "ls", "--since", "2026-03-01T10:00:00Z"}, []string{"login", "session.open"}, nil},
		{"ok/audit-verify", []string{"audit", "verify"}, []string{"audit log: 2 event(s), seq 1..2", "chain intact"}, nil},
		{"ok/audit-export", []string{"audit", "export"}, []string{`"seq":1`, `"seq":2`, `"prev_hash":"0000`}, nil},
		{"ok/cluster-status", []string{"cluster", "status"}, []string{"n1 (Leader)", "n1 at 127.0.0.1:8300", "last 90, commit 90, applied 90", "3 (3 voters)", "cluster CA pin: sha256:0f0f"}, nil},
		{"ok/cluster-members", []string{"cluster", "members"}, []string{"RAFT ADDRESS", "n1", "n2", "n3", "127.0.0.2:8443"}, nil},
		{"ok/help", []string{"help"}, []string{"Available Commands", "servers", "service-tokens", "audit"}, []string{"exit"}},
		{"ok/group-alone-prints-help", []string{"users"}, []string{"Available Commands", "disable"}, nil},
		{"ok/flag-help", []string{"projects", "set", "--help"}, []string{"--cert-ttl", "--recording", "--shared-logins"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != ExitOK || r.stderr != "" {
				t.Fatalf("%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(r.stdout, w) {
					t.Errorf("output has %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	if n := len(h.auditEvents()); n != 2 {
		t.Errorf("reads wrote audit events: %d events", n)
	}
}

// Every listing and show, in --json form.
func TestJSONOutput(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		// for arrays: the length; for objects: -1
		n int
		// key and value expected in the object (or the first element)
		key  string
		want any
	}{
		{"ok/whoami", []string{"whoami"}, -1, "unix_name", "alice"},
		{"ok/users-ls", []string{"users", "ls"}, 3, "login", "alice"},
		{"ok/users-show", []string{"users", "show", "bob"}, -1, "bindings", 1.0},
		{"ok/groups-ls", []string{"groups", "ls"}, 3, "name", "eng"},
		{"ok/groups-show", []string{"groups", "show", "ops"}, -1, "gid", 63003.0},
		{"ok/projects-ls", []string{"projects", "ls"}, 3, "name", "db"},
		{"ok/projects-show", []string{"projects", "show", "web"}, -1, "servers", 2.0},
		{"ok/entitlements-ls", []string{"entitlements", "ls"}, 2, "name", "restart-nginx"},
		{"ok/entitlements-show", []string{"entitlements", "show", "unused"}, -1, "run_as", "root"},
		{"ok/servers-ls", []string{"servers", "ls", "--label", "env=prod"}, 2, "project", "db"},
		{"ok/servers-show", []string{"servers", "show", "web-1"}, -1, "addr", "10.0.0.11"},
		{"ok/tokens-ls", []string{"tokens", "ls"}, 2, "kind", "enroll"},
		{"ok/service-tokens-ls", []string{"service-tokens", "ls"}, 1, "role", "admin"},
		{"ok/bindings-ls", []string{"bindings", "ls"}, 1, "user", "bob"},
		{"ok/bindings-ls-empty", []string{"bindings", "ls", "--user", "carol"}, 0, "", nil},
		{"ok/sessions-ls", []string{"sessions", "ls"}, 2, "id", "sess-bbbb2222"},
		{"ok/sessions-show", []string{"sessions", "show", "sess-aaaa1111"}, -1, "server", "web-1"},
		{"ok/audit-ls", []string{"audit", "ls"}, 2, "type", "login"},
		{"ok/audit-ls-none", []string{"audit", "ls", "--type", "nothing"}, 0, "", nil},
		{"ok/audit-verify", []string{"audit", "verify"}, -1, "ok", true},
		{"ok/cluster-status", []string{"cluster", "status"}, -1, "leader_id", "n1"},
		{"ok/cluster-status-ca-pin", []string{"cluster", "status"}, -1, "ca_pin", "sha256:" + strings.Repeat("0f", 32)},
		{"ok/cluster-members", []string{"cluster", "members"}, 3, "id", "n1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(append(tc.args, "--json")...)
			if r.code != ExitOK {
				t.Fatalf("%s", r)
			}
			var obj map[string]any
			if tc.n >= 0 {
				arr := decodeJSON[[]map[string]any](t, r.stdout)
				if len(arr) != tc.n {
					t.Fatalf("%d elements, want %d:\n%s", len(arr), tc.n, r.stdout)
				}
				if tc.n == 0 {
					return
				}
				obj = arr[0]
			} else {
				obj = decodeJSON[map[string]any](t, r.stdout)
			}
			if got := obj[tc.key]; got != tc.want {
				t.Errorf("%s = %#v, want %#v:\n%s", tc.key, got, tc.want, r.stdout)
			}
		})
	}
}

func TestQuietOutput(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"users", "ls", "-q"}, "sub-alice\nsub-bob\nsub-carol\n"},
		{[]string{"servers", "ls", "--quiet", "--project", "web"}, "srv-web-1\nsrv-web-2\n"},
		{[]string{"projects", "ls", "-q"}, "db\nempty\nweb\n"},
		{[]string{"servers", "show", "db-1", "-q"}, "srv-db-1\n"},
		{[]string{"tokens", "ls", "-q", "--project", "web"}, strings.Repeat("1a", 32) + "\n"},
		{[]string{"sessions", "ls", "--active", "-q"}, "sess-aaaa1111\n"},
		{[]string{"cluster", "members", "-q"}, "n1\nn2\nn3\n"},
		{[]string{"projects", "set", "db", "--cert-ttl", "5m", "-q"}, ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != ExitOK || r.stdout != tc.want {
				t.Fatalf("want stdout %q; %s", tc.want, r)
			}
		})
	}
}

// Misuse exits 2 with cobra's error; a missing object or a refused change
// exits 1; nothing is changed or audited either way.
func TestRefusals(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"usage/unknown-command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate" for "admin"`},
		{"usage/unknown-command-suggests", []string{"serverz", "ls"}, ExitUsage, "Did you mean this?\n\tservers"},
		{"usage/unknown-subcommand", []string{"users", "frob"}, ExitUsage, `unknown command "frob" for "admin users"`},
		{"usage/unknown-flag", []string{"servers", "ls", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"usage/bad-flag-value", []string{"tokens", "create", "web", "--ttl", "soon"}, ExitUsage, `invalid argument "soon" for "--ttl"`},
		{"usage/missing-argument", []string{"users", "show"}, ExitUsage, "users show takes USER (got 0 argument(s))"},
		{"usage/extra-argument", []string{"projects", "show", "web", "db"}, ExitUsage, "takes PROJECT"},
		{"usage/json-and-quiet", []string{"users", "ls", "--json", "-q"}, ExitUsage, "cannot be used together"},
		{"usage/recording-value", []string{"projects", "set", "web", "--recording", "maybe"}, ExitUsage, "--recording takes on or off"},
		{"usage/role-value", []string{"projects", "grant", "web", "eng", "--role", "root"}, ExitUsage, "--role takes user or admin"},
		{"usage/set-nothing", []string{"projects", "set", "web", "--json"}, ExitUsage, "give at least one setting"},
		{"usage/entitlement-no-command", []string{"entitlements", "create", "x"}, ExitUsage, "at least one --command"},
		{"usage/entitlement-unbalanced-quote", []string{"entitlements", "create", "x", "--command", "/bin/echo 'a"}, ExitUsage, "quote is not closed"},
		{"usage/label-syntax", []string{"servers", "label", "web-1", "oops"}, ExitUsage, "want KEY=VALUE"},
		{"usage/label-missing", []string{"servers", "label", "web-1"}, ExitUsage, "at least one KEY=VALUE"},
		{"usage/since", []string{"audit", "ls", "--since", "yesterday"}, ExitUsage, `--since "yesterday"`},
		{"usage/bindings-revoke-two-ways", []string{"bindings", "revoke", "SHA256:x", "--all"}, ExitUsage, "exactly one of"},
		{"usage/bindings-revoke-nothing", []string{"bindings", "revoke"}, ExitUsage, "exactly one of"},
		{"usage/tokens-negative-uses", []string{"tokens", "create", "web", "--uses", "-1"}, ExitUsage, "--uses -1 is negative"},
		{"usage/internal-completion-command", []string{"__complete", "users", ""}, ExitUsage, `unknown command "__complete"`},
		{"usage/exit-is-interactive-only", []string{"exit"}, ExitUsage, "unknown command"},
		{"missing/user", []string{"users", "show", "nobody"}, ExitError, `user "nobody": not found`},
		{"missing/user-disable", []string{"users", "disable", "nobody"}, ExitError, "not found"},
		{"missing/group", []string{"groups", "show", "nope"}, ExitError, `group "nope": not found`},
		{"missing/project", []string{"projects", "show", "nope"}, ExitError, `project "nope": not found`},
		{"missing/project-set", []string{"projects", "set", "nope", "--recording", "on"}, ExitError, "not found"},
		{"missing/project-grant", []string{"projects", "grant", "nope", "eng"}, ExitError, "not found"},
		{"missing/grant", []string{"projects", "revoke", "web", "ops"}, ExitError, "group ops has no grant in project web: not found"},
		{"missing/grant-entitlement", []string{"projects", "grant", "web", "ops", "--sudo", "nope"}, ExitError, "entitlement nope: not found"},
		{"missing/entitlement", []string{"entitlements", "show", "nope"}, ExitError, "not found"},
		{"missing/server", []string{"servers", "show", "nope"}, ExitError, `server "nope": not found`},
		{"missing/servers-project", []string{"servers", "ls", "--project", "nope"}, ExitError, "not found"},
		{"missing/session", []string{"sessions", "show", "zzzz"}, ExitError, "not found"},
		{"missing/token", []string{"tokens", "revoke", "ffffffff"}, ExitError, "not found"},
		{"missing/token-project", []string{"tokens", "create", "nope"}, ExitError, "not found"},
		{"missing/service-token", []string{"service-tokens", "revoke", "nope"}, ExitError, "not found"},
		{"missing/binding", []string{"bindings", "revoke", "SHA256:nope"}, ExitError, "not found"},
		{"missing/bindings-user", []string{"bindings", "ls", "--user", "nobody"}, ExitError, "not found"},
		{"missing/node", []string{"cluster", "remove", "n9", "--yes"}, ExitError, `node "n9" is not a member`},
		{"refused/token-prefix-short", []string{"tokens", "revoke", "1a1a"}, ExitError, "too short"},
		{"refused/project-name", []string{"projects", "create", "Bad_Name"}, ExitError, "invalid: project name"},
		{"refused/project-exists", []string{"projects", "create", "web"}, ExitError, "already exists"},
		{"refused/cert-ttl", []string{"projects", "set", "web", "--cert-ttl", "5s"}, ExitError, "cert ttl 5s is outside"},
		{"refused/shared-login", []string{"projects", "set", "web", "--shared-logins", "Root!"}, ExitError, "not a POSIX user name"},
		{"refused/project-with-servers", []string{"projects", "delete", "web", "--yes"}, ExitError, "still has servers"},
		{"refused/entitlement-in-use", []string{"entitlements", "delete", "restart-nginx", "--yes"}, ExitError, "used by grant web/eng"},
		{"refused/entitlement-exists", []string{"entitlements", "create", "unused", "--command", "/bin/true"}, ExitError, "already exists"},
		{"refused/entitlement-relative-path", []string{"entitlements", "create", "x", "--command", "systemctl restart"}, ExitError, "not absolute"},
		{"refused/entitlement-env-keep", []string{"entitlements", "create", "x", "--command", "/bin/true", "--env-keep", "LD_PRELOAD"}, ExitError, "run code as root"},
		{"refused/label-key", []string{"servers", "label", "web-1", "bad key=x"}, ExitError, "label key"},
		{"refused/enable-deleted", []string{"users", "enable", "sub-carol", "--json"}, ExitOK, ""},
	}
	before := len(h.auditEvents())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.err) {
				t.Fatalf("want exit %d and stderr with %q; %s", tc.code, tc.err, r)
			}
			if tc.code == ExitUsage && !strings.Contains(r.stderr, "for usage.") {
				t.Errorf("no usage hint: %s", r)
			}
			if tc.code != ExitOK && r.stdout != "" {
				t.Errorf("refusal wrote to stdout: %s", r)
			}
		})
	}
	// The one accepted change (carol enabled) is the only one audited.
	if n := len(h.auditEvents()) - before; n != 1 {
		t.Errorf("%d audit events written by refusals, want 1 (the accepted enable)", n)
	}
	r := h.run("users", "delete", "carol", "--yes")
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if r := h.run("users", "enable", "carol"); r.code != ExitError || !strings.Contains(r.stderr, "deleted") {
		t.Errorf("enable of a deleted user: %s", r)
	}
}
