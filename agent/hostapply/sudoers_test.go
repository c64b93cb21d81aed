package hostapply

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sudoHeader = "# Managed by rampart-agent: entitlement deploy. Changes are overwritten.\n"

func TestRenderSudoers(t *testing.T) {
	alias := sudoAlias("deploy")
	tests := []struct {
		name   string
		rule   SudoRule
		users  []string
		groups []string
		want   string
	}{
		{
			name:  "ok/commands-with-and-without-args",
			rule:  SudoRule{NoPasswd: true, Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}, {Path: "/usr/bin/journalctl"}}},
			users: []string{"alice"}, groups: []string{"ops"},
			want: "alice, %ops ALL = (root) NOPASSWD: EXEC: NOSETENV: /usr/bin/systemctl restart nginx, /usr/bin/journalctl\n",
		},
		{
			name:  "ok/equals-escaped",
			rule:  SudoRule{Commands: []SudoCommand{{Path: "/usr/local/bin/deploy", Args: []string{"--env=prod", "a=b=c"}}}},
			users: []string{"alice"},
			want:  `alice ALL = (root) PASSWD: EXEC: NOSETENV: /usr/local/bin/deploy --env\=prod a\=b\=c` + "\n",
		},
		{
			name:   "ok/no-args-allowed",
			rule:   SudoRule{Commands: []SudoCommand{{Path: "/usr/bin/uptime", Args: []string{}}}},
			groups: []string{"ops"},
			want:   `%ops ALL = (root) PASSWD: EXEC: NOSETENV: /usr/bin/uptime ""` + "\n",
		},
		{
			name:   "ok/all-with-tags",
			rule:   SudoRule{RunAs: "deploy", NoExec: true, SetEnv: true, Commands: []SudoCommand{{Path: "ALL"}}},
			groups: []string{"admins", "ops"},
			want:   "%admins, %ops ALL = (deploy) PASSWD: NOEXEC: SETENV: ALL\n",
		},
		{
			name:  "ok/all-says-nosetenv",
			rule:  SudoRule{NoPasswd: true, Commands: []SudoCommand{{Path: "ALL"}}},
			users: []string{"alice"},
			want:  "alice ALL = (root) NOPASSWD: EXEC: NOSETENV: ALL\n",
		},
		{
			name:  "ok/env-keep-bound-to-commands",
			rule:  SudoRule{EnvKeep: []string{"TERM", "COLORTERM", "TERM"}, Commands: []SudoCommand{{Path: "/usr/bin/less", Args: []string{"/var/log/syslog"}}}},
			users: []string{"alice"},
			want: "Cmnd_Alias " + alias + " = /usr/bin/less /var/log/syslog\n" +
				"Defaults!" + alias + " env_keep += \"COLORTERM TERM\"\n" +
				"alice ALL = (root) PASSWD: EXEC: NOSETENV: /usr/bin/less /var/log/syslog\n",
		},
		{
			name:  "ok/env-keep-with-all-bound-to-subjects",
			rule:  SudoRule{EnvKeep: []string{"TERM"}, Commands: []SudoCommand{{Path: "ALL"}}},
			users: []string{"alice"}, groups: []string{"ops"},
			want: "Defaults:alice, %ops env_keep += \"TERM\"\n" +
				"alice, %ops ALL = (root) PASSWD: EXEC: NOSETENV: ALL\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(renderSudoers("deploy", tt.rule, tt.users, tt.groups))
			if got != sudoHeader+tt.want {
				t.Errorf("got:\n%s\nwant:\n%s%s", got, sudoHeader, tt.want)
			}
		})
	}
	if sudoAlias("a-b") == sudoAlias("a_b") {
		t.Error("aliases of a-b and a_b collide")
	}
}

func TestCheckSudoRule(t *testing.T) {
	cmd := func(path string, args ...string) []SudoCommand { return []SudoCommand{{Path: path, Args: args}} }
	ok := SudoRule{Commands: cmd("/usr/bin/systemctl", "restart", "nginx"), Users: []string{"alice"}, Groups: []string{"ops"}}
	with := func(f func(*SudoRule)) SudoRule { r := ok; f(&r); return r }
	tests := []struct {
		name  string
		ent   string
		rule  SudoRule
		valid bool
	}{
		{"ok/plain", "deploy", ok, true},
		{"ok/all-alone", "admin", with(func(r *SudoRule) { r.Commands = cmd("ALL"); r.Commands[0].Args = nil }), true},
		{"ok/equals-in-arg", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "--a=b") }), true},
		{"ok/env-keep", "deploy", with(func(r *SudoRule) { r.EnvKeep = []string{"TERM"} }), true},
		{"fail/newline-in-arg", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "a\nALL ALL=(ALL) NOPASSWD: ALL") }), false},
		{"fail/newline-in-path", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x\nALL") }), false},
		{"fail/all-beside-another-command", "deploy", with(func(r *SudoRule) {
			r.Commands = []SudoCommand{{Path: "/usr/bin/x"}, {Path: "ALL"}}
		}), false},
		{"fail/all-with-args", "deploy", with(func(r *SudoRule) { r.Commands = cmd("ALL", "x") }), false},
		{"fail/comma-all-in-arg", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "a,ALL") }), false},
		{"fail/comma-all-in-path", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x,ALL") }), false},
		{"fail/colon", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "NOPASSWD:") }), false},
		{"fail/hash", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "#") }), false},
		{"fail/backslash", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", `a\`) }), false},
		{"fail/quotes", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", `""`) }), false},
		{"fail/glob", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "*") }), false},
		{"fail/space", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "a b") }), false},
		{"fail/tab", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "a\tb") }), false},
		{"fail/nul", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "a\x00b") }), false},
		{"fail/empty-arg", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "") }), false},
		{"fail/regex-first-arg", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", "^.*$") }), false},
		{"fail/relative-path", "deploy", with(func(r *SudoRule) { r.Commands = cmd("bin/x") }), false},
		{"fail/directory", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/") }), false},
		{"fail/dotdot", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/../bin/sh") }), false},
		{"fail/lowercase-all", "deploy", with(func(r *SudoRule) { r.Commands = cmd("all") }), false},
		{"fail/runas-all", "deploy", with(func(r *SudoRule) { r.RunAs = "ALL" }), false},
		{"fail/runas-injection", "deploy", with(func(r *SudoRule) { r.RunAs = "root) ALL" }), false},
		{"fail/env-ld-preload", "deploy", with(func(r *SudoRule) { r.EnvKeep = []string{"LD_PRELOAD"} }), false},
		{"fail/env-path", "deploy", with(func(r *SudoRule) { r.EnvKeep = []string{"PATH"} }), false},
		{"fail/env-quote", "deploy", with(func(r *SudoRule) { r.EnvKeep = []string{`A"`} }), false},
		{"fail/user-injection", "deploy", with(func(r *SudoRule) { r.Users = []string{"alice\nALL ALL=(ALL) NOPASSWD: ALL"} }), false},
		{"fail/user-all", "deploy", with(func(r *SudoRule) { r.Users = []string{"ALL"} }), false},
		{"fail/group-percent", "deploy", with(func(r *SudoRule) { r.Groups = []string{"%ops"} }), false},
		{"fail/no-commands", "deploy", with(func(r *SudoRule) { r.Commands = nil }), false},
		{"fail/too-long", "deploy", with(func(r *SudoRule) { r.Commands = cmd("/usr/bin/x", strings.Repeat("a", 1100)) }), false},
		{"fail/entitlement-name-path", "../x", ok, false},
		{"fail/entitlement-name-dot", "a.b", ok, false},
		{"fail/entitlement-name-upper", "Deploy", ok, false},
	}
	h := &Host{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.checkSudoRule(tt.ent, tt.rule)
			if tt.valid && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.valid && err == nil {
				t.Error("accepted")
			}
		})
	}
}

func sudoDesired(rules map[string]SudoRule) Desired {
	d := baseDesired()
	d.Sudo = rules
	return d
}

var deployRule = SudoRule{NoPasswd: true, Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}, Groups: []string{"ops"}, Users: []string{"bob"}}

func deployWith(f func(*SudoRule)) SudoRule {
	r := deployRule
	f(&r)
	return r
}

const deployFile = "/etc/sudoers.d/rampart-deploy"

var deployContent = sudoHeader + "bob, %ops ALL = (root) NOPASSWD: EXEC: NOSETENV: /usr/bin/systemctl restart nginx\n"

func sudoCommands(cmds []string) []string {
	out := []string{}
	for _, c := range cmds {
		if strings.HasPrefix(c, "visudo") {
			// The temporary name is random.
			if i := strings.Index(c, ".tmp"); i >= 0 {
				c = c[:i] + ".tmp*"
			}
			out = append(out, c)
		}
	}
	return out
}

func noTempFiles(t *testing.T, f *fakeHost) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.root, "/etc/sudoers.d/.*"))
	if len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

func TestApplySudo(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fakeHost)
		steps []applyStep
	}{
		{
			name: "ok/written-checked-then-unchanged",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}), cmds: []string{"visudo -c -f /etc/sudoers.d/.rampart-deploy.tmp*", "visudo -c"},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, deployContent, 0o440)
						noTempFiles(t, th.f)
					}},
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}), cmds: []string{}},
			},
		},
		{
			name: "ok/drift-repaired",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule})},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}),
					before:  func(t *testing.T, f *fakeHost) { os.Remove(filepath.Join(f.root, deployFile)) },
					check:   func(t *testing.T, th *testHost, rep Report) { fileIs(t, th.f, deployFile, deployContent, 0o440) },
				},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}),
					before:  func(t *testing.T, f *fakeHost) { f.writeFile(t, deployFile, "ALL ALL=(ALL) NOPASSWD: ALL\n", 0o440) },
					check:   func(t *testing.T, th *testHost, rep Report) { fileIs(t, th.f, deployFile, deployContent, 0o440) },
				},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}),
					before:  func(t *testing.T, f *fakeHost) { os.Chmod(filepath.Join(f.root, deployFile), 0o666) },
					check:   func(t *testing.T, th *testHost, rep Report) { fileIs(t, th.f, deployFile, deployContent, 0o440) },
				},
			},
		},
		{
			name:  "ok/stale-files-removed-others-kept",
			setup: func(t *testing.T, f *fakeHost) { f.writeFile(t, "/etc/sudoers.d/README", "x\n", 0o440) },
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}), before: func(t *testing.T, f *fakeHost) {
					f.writeFile(t, "/etc/sudoers.d/rampart-old", "alice ALL=(ALL) ALL\n", 0o440)
					f.writeFile(t, "/etc/sudoers.d/.rampart-x.tmp123", "junk\n", 0o440)
				}},
				// Removing files needs no check.
				{desired: baseDesired(), cmds: []string{}, check: func(t *testing.T, th *testHost, rep Report) {
					for _, gone := range []string{deployFile, "/etc/sudoers.d/rampart-old"} {
						if _, ok := th.f.readFile(t, gone); ok {
							t.Errorf("%s was kept", gone)
						}
					}
					fileIs(t, th.f, "/etc/sudoers.d/README", "x\n", 0o440)
					noTempFiles(t, th.f)
				}},
			},
		},
		{
			name: "ok/unmanaged-and-deprovisioned-subjects-left-out",
			setup: func(t *testing.T, f *fakeHost) {
				f.addUser(&fakeUser{name: "carol", uid: 1500, gid: 100})
				f.addGroup("wheel2", 1600)
			},
			steps: []applyStep{
				{
					desired: func() Desired {
						d := sudoDesired(map[string]SudoRule{
							"deploy": deployWith(func(r *SudoRule) { r.Users = []string{"alice", "bob", "carol"}; r.Groups = []string{"wheel2"} }),
							"only":   deployWith(func(r *SudoRule) { r.Users = []string{"carol"}; r.Groups = nil }),
						})
						d.Users[0].Status = StatusDisabled
						return d
					}(),
					problems: []wantProblem{{KindSudo, "deploy", ErrConflict}, {KindSudo, "deploy", ErrConflict}, {KindSudo, "only", ErrConflict}},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, sudoHeader+"bob ALL = (root) NOPASSWD: EXEC: NOSETENV: /usr/bin/systemctl restart nginx\n", 0o440)
						if _, ok := th.f.readFile(t, "/etc/sudoers.d/rampart-only"); ok {
							t.Error("a rule for unmanaged accounts only was written")
						}
					},
				},
			},
		},
		{
			name: "fail/group-with-foreign-primary-member-left-out",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}), check: func(t *testing.T, th *testHost, rep Report) {
					fileIs(t, th.f, deployFile, deployContent, 0o440)
				}},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}),
					before: func(t *testing.T, f *fakeHost) {
						f.addUser(&fakeUser{name: "carol", uid: 1500, gid: 63001, shell: "/bin/sh", home: "/home/carol"})
					},
					problems: []wantProblem{{KindGroup, "ops", ErrConflict}},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, sudoHeader+"bob ALL = (root) NOPASSWD: EXEC: NOSETENV: /usr/bin/systemctl restart nginx\n", 0o440)
					},
				},
			},
		},
		{
			name: "fail/group-whose-members-cannot-be-set-left-out",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule})},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployRule}),
					before: func(t *testing.T, f *fakeHost) {
						f.group("ops").members = append(f.group("ops").members, "root")
						f.fail = func(argv []string) int {
							if argv[0] == "gpasswd" {
								return 3
							}
							return 0
						}
					},
					problems: []wantProblem{{KindGroup, "ops", nil}},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, sudoHeader+"bob ALL = (root) NOPASSWD: EXEC: NOSETENV: /usr/bin/systemctl restart nginx\n", 0o440)
					},
				},
			},
		},
		{
			name: "fail/visudo-refuses-old-file-stays",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule})},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployWith(func(r *SudoRule) { r.Commands = []SudoCommand{{Path: "/usr/bin/reboot"}} })}),
					before: func(t *testing.T, f *fakeHost) {
						f.visudoReject = func(s string) bool { return strings.Contains(s, "reboot") }
					},
					cmds:     []string{"visudo -c -f /etc/sudoers.d/.rampart-deploy.tmp*"},
					problems: []wantProblem{{KindSudo, "deploy", ErrRejected}},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, deployContent, 0o440)
						noTempFiles(t, th.f)
					},
				},
			},
		},
		{
			name: "fail/whole-check-puts-writes-back-keeps-removals",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule, "old": deployRule})},
				{
					desired: sudoDesired(map[string]SudoRule{
						"deploy": deployWith(func(r *SudoRule) { r.NoPasswd = false }),
						"admin":  deployWith(func(r *SudoRule) { r.Commands = []SudoCommand{{Path: "ALL"}} }),
					}),
					before:   func(t *testing.T, f *fakeHost) { f.visudoWholeReject = true },
					problems: []wantProblem{{KindSudo, "/etc/sudoers.d", ErrRejected}},
					check: func(t *testing.T, th *testHost, rep Report) {
						fileIs(t, th.f, deployFile, deployContent, 0o440)
						if _, ok := th.f.readFile(t, "/etc/sudoers.d/rampart-admin"); ok {
							t.Error("rampart-admin was kept")
						}
						// A revoked entitlement stays revoked.
						if _, ok := th.f.readFile(t, "/etc/sudoers.d/rampart-old"); ok {
							t.Error("rampart-old was put back")
						}
					},
				},
			},
		},
		{
			name: "fail/injection-refused-old-file-stays",
			steps: []applyStep{
				{desired: sudoDesired(map[string]SudoRule{"deploy": deployRule})},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployWith(func(r *SudoRule) {
						r.Commands = []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart\nALL ALL=(ALL) NOPASSWD: ALL"}}}
					})}),
					cmds:     []string{},
					problems: []wantProblem{{KindSudo, "deploy", ErrInvalid}},
					check:    func(t *testing.T, th *testHost, rep Report) { fileIs(t, th.f, deployFile, deployContent, 0o440) },
				},
				{
					desired: sudoDesired(map[string]SudoRule{"deploy": deployWith(func(r *SudoRule) {
						r.Commands = []SudoCommand{{Path: "/usr/bin/systemctl"}, {Path: "ALL"}}
					})}),
					cmds:     []string{},
					problems: []wantProblem{{KindSudo, "deploy", ErrInvalid}},
					check:    func(t *testing.T, th *testHost, rep Report) { fileIs(t, th.f, deployFile, deployContent, 0o440) },
				},
			},
		},
		{
			name:  "fail/sudoers-without-includedir",
			setup: func(t *testing.T, f *fakeHost) { f.writeFile(t, "/etc/sudoers", "root ALL=(ALL) ALL\n", 0o440) },
			steps: []applyStep{{desired: baseDesired(), problems: []wantProblem{{KindSudo, "/etc/sudoers", nil}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			th := newTestHost(t, f, nil)
			for i, st := range tt.steps {
				if st.before != nil {
					st.before(t, f)
				}
				f.resetLog()
				rep, err := th.Apply(t.Context(), st.desired)
				if err != nil {
					t.Fatalf("step %d: Apply: %v", i+1, err)
				}
				if st.cmds != nil {
					equalLists(t, "sudo commands", sudoCommands(f.commands()), st.cmds)
				}
				checkProblems(t, rep, st.problems)
				if st.check != nil {
					st.check(t, th, rep)
				}
				if t.Failed() {
					t.Fatalf("step %d failed; report: %+v", i+1, rep)
				}
			}
		})
	}
}

func fileIs(t *testing.T, f *fakeHost, inside, want string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(f.root, inside)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%s: %v", inside, err)
		return
	}
	if string(b) != want {
		t.Errorf("%s:\n%s\nwant:\n%s", inside, b, want)
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", inside, fi.Mode().Perm(), mode)
	}
}
