package hostapply

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func baseDesired() Desired {
	return Desired{
		Groups: []Group{{Name: "ops", GID: 63001}, {Name: "dev", GID: 63002}},
		Users: []User{
			{Name: "alice", UID: 61001, Groups: []string{"ops"}},
			{Name: "bob", UID: 61002, Groups: []string{"ops", "dev"}},
		},
	}
}

// with returns base with alice changed by f.
func withAlice(f func(*User)) Desired {
	d := baseDesired()
	f(&d.Users[0])
	return d
}

func withoutAlice() Desired {
	d := baseDesired()
	d.Users = d.Users[1:]
	return d
}

const (
	addAlice = "useradd -u 61001 -g alice -G ops,rampart-managed -m -d /home/alice -s /bin/bash -c rampart-managed -p * alice"
	addBob   = "useradd -u 61002 -g bob -G dev,ops,rampart-managed -m -d /home/bob -s /bin/bash -c rampart-managed -p * bob"
)

var createAll = []string{
	"groupadd -r rampart-managed",
	"groupadd -g 63001 ops", "groupadd -g 63002 dev",
	"groupadd -g 61001 alice", addAlice,
	"groupadd -g 61002 bob", addBob,
}

var deprovisionAlice = []string{"usermod -L -e 1 -G rampart-managed alice", "pkill -KILL -u 61001", "pkill -KILL -U 61001"}

type applyStep struct {
	desired Desired
	advance time.Duration
	before  func(t *testing.T, f *fakeHost)
	// cmds are the account commands the pass runs, exactly (nil: not
	// checked).
	cmds     []string
	problems []wantProblem
	check    func(t *testing.T, th *testHost, rep Report)
}

func readState(t *testing.T, th *testHost) *managedState {
	t.Helper()
	st, err := th.loadState()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestApplyAccounts(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		setup func(t *testing.T, f *fakeHost)
		steps []applyStep
	}{
		{
			name: "ok/create-then-nothing",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll, check: func(t *testing.T, th *testHost, rep Report) {
					for _, n := range []string{"alice", "bob"} {
						if got, _ := th.f.readFile(t, "/etc/ssh/rampart_principals/"+n); got != n+"\n" {
							t.Errorf("principals of %s = %q", n, got)
						}
					}
					st := readState(t, th)
					if st.Users["alice"] == nil || st.Users["alice"].UID != 61001 || st.Users["alice"].Pending || st.Groups["ops"] == nil {
						t.Errorf("state = %+v", st)
					}
					if u := th.f.user("alice"); u.pw != "*" || u.gecos != Marker || u.gid != 61001 {
						t.Errorf("alice = %+v", u)
					}
				}},
				{desired: baseDesired(), cmds: []string{}, check: func(t *testing.T, th *testHost, rep Report) {
					if len(rep.Changes) != 0 {
						t.Errorf("second pass changed %v", rep.Changes)
					}
					// An idle pass reads the account database once.
					n := 0
					for _, c := range th.f.log {
						if strings.HasPrefix(c, "getent ") {
							n++
						}
					}
					if n != 3 {
						t.Errorf("an idle pass ran getent %d times, want 3: %q", n, th.f.log)
					}
				}},
			},
		},
		{
			name: "ok/drift-repaired",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired: baseDesired(),
					before: func(t *testing.T, f *fakeHost) {
						a := f.user("alice")
						a.shell, a.pw, a.expire, a.gecos = "/bin/sh", "!*", "1", "edited"
						ops := f.group("ops")
						ops.members = slices.DeleteFunc(ops.members, func(s string) bool { return s == "alice" })
						f.group("dev").members = append(f.group("dev").members, "root")
						os.Remove(filepath.Join(f.root, "/etc/ssh/rampart_principals/bob"))
						f.writeFile(t, "/etc/ssh/rampart_principals/mallory", "root\n", 0o644)
					},
					cmds: []string{"usermod -c rampart-managed -s /bin/bash -G ops,rampart-managed -p * -e '' alice", "gpasswd -M bob dev"},
					check: func(t *testing.T, th *testHost, rep Report) {
						if _, ok := th.f.readFile(t, "/etc/ssh/rampart_principals/bob"); !ok {
							t.Error("bob's principals file was not restored")
						}
						if _, ok := th.f.readFile(t, "/etc/ssh/rampart_principals/mallory"); ok {
							t.Error("a stray principals file was kept")
						}
					},
				},
			},
		},
		{
			name: "ok/recreated-after-userdel-by-hand",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired: baseDesired(),
					before: func(t *testing.T, f *fakeHost) {
						if _, err := f.Run(t.Context(), []string{"userdel", "alice"}); err != nil {
							t.Fatal(err)
						}
						f.resetLog()
					},
					cmds: []string{"groupadd -g 61001 alice", addAlice},
				},
			},
		},
		{
			name: "ok/disabled-then-active",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired: withAlice(func(u *User) { u.Status = StatusDisabled }),
					cmds:    deprovisionAlice,
					check: func(t *testing.T, th *testHost, rep Report) {
						if _, ok := th.f.readFile(t, "/etc/ssh/rampart_principals/alice"); ok {
							t.Error("a disabled account kept its principals file")
						}
						if a := th.f.user("alice"); a == nil || a.pw != "!*" || a.expire != "1" {
							t.Errorf("alice = %+v", a)
						}
						if m := th.f.group("ops").members; !slices.Equal(m, []string{"bob"}) {
							t.Errorf("ops members = %v", m)
						}
					},
				},
				// Processes are looked for on every pass; nothing else.
				{desired: withAlice(func(u *User) { u.Status = StatusDisabled }), cmds: deprovisionAlice[1:]},
				{desired: baseDesired(), cmds: []string{"usermod -G ops,rampart-managed -p * -e '' alice"}, check: func(t *testing.T, th *testHost, rep Report) {
					if _, ok := th.f.readFile(t, "/etc/ssh/rampart_principals/alice"); !ok {
						t.Error("a reactivated account has no principals file")
					}
				}},
			},
		},
		{
			name: "ok/no-pkill-without-processes",
			cfg: func(c *Config) {
				c.ProcessUIDs = func() (map[uint32]bool, error) { return map[uint32]bool{0: true}, nil }
			},
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{desired: withAlice(func(u *User) { u.Status = StatusDisabled }), cmds: deprovisionAlice[:1]},
			},
		},
		{
			name: "ok/deleted-after-grace",
			cfg:  func(c *Config) { c.DeleteGrace = time.Hour },
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{desired: withAlice(func(u *User) { u.Status = StatusDeleted }), cmds: deprovisionAlice},
				{desired: withAlice(func(u *User) { u.Status = StatusDeleted }), advance: 59 * time.Minute, cmds: deprovisionAlice[1:]},
				{
					desired: withAlice(func(u *User) { u.Status = StatusDeleted }), advance: time.Minute,
					cmds: append(slices.Clone(deprovisionAlice[1:]), "userdel alice"),
					check: func(t *testing.T, th *testHost, rep Report) {
						if th.f.user("alice") != nil || th.f.group("alice") != nil {
							t.Error("alice or her private group is still there")
						}
						if readState(t, th).Users["alice"] != nil {
							t.Error("state still lists alice")
						}
					},
				},
				{desired: withAlice(func(u *User) { u.Status = StatusDeleted }), cmds: []string{}},
			},
		},
		{
			name: "ok/reactivated-within-grace",
			cfg:  func(c *Config) { c.DeleteGrace = time.Hour },
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{desired: withoutAlice(), cmds: deprovisionAlice},
				{desired: baseDesired(), advance: 30 * time.Minute, cmds: []string{"usermod -G ops,rampart-managed -p * -e '' alice"}},
				{desired: withoutAlice(), advance: 45 * time.Minute, cmds: deprovisionAlice},
			},
		},
		{
			name: "ok/absent-deleted-at-once-home-archived",
			cfg:  func(c *Config) { c.DeleteGrace = -1; c.HomeOnDelete = HomeArchive },
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll, before: func(t *testing.T, f *fakeHost) {
					f.writeFile(t, "/home/alice/notes", "x", 0o600)
				}},
				{desired: withoutAlice(), cmds: append(slices.Clone(deprovisionAlice),
					"tar --create --gzip --file /var/lib/rampart-agent/home-archive/alice-61001-20260102T030405Z.tar.gz --directory /home -- alice",
					"userdel -r alice")},
			},
		},
		{
			name: "ok/home-kept-when-moved-by-hand",
			cfg:  func(c *Config) { c.DeleteGrace = -1; c.HomeOnDelete = HomeArchive },
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired:  withoutAlice(),
					before:   func(t *testing.T, f *fakeHost) { f.user("alice").home = "/" },
					cmds:     append(slices.Clone(deprovisionAlice), "userdel alice"),
					problems: []wantProblem{{KindUser, "alice", nil}},
				},
			},
		},
		{
			name: "ok/group-dropped",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired: Desired{
						Groups: []Group{{Name: "ops", GID: 63001}},
						Users:  []User{{Name: "alice", UID: 61001, Groups: []string{"ops"}}, {Name: "bob", UID: 61002, Groups: []string{"ops"}}},
					},
					cmds: []string{"usermod -G ops,rampart-managed bob", "groupdel dev"},
				},
			},
		},
		{
			name: "ok/unmanaged-accounts-untouched",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("carol", 1500)
				f.addUser(&fakeUser{name: "carol", uid: 1500, gid: 1500, pw: "!", shell: "/bin/sh", home: "/home/carol"})
			},
			steps: []applyStep{{desired: Desired{Users: []User{{Name: "carol", UID: 1500, Status: StatusDeleted}}}, cmds: []string{"groupadd -r rampart-managed"}}},
		},
		{
			name: "ok/pending-creation-confirmed",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("alice", 61001)
				f.addUser(&fakeUser{name: "alice", uid: 61001, gid: 61001, gecos: Marker, home: "/home/alice", shell: "/bin/bash", pw: "*"})
				writeTestState(t, f, `{"version":1,"users":{"alice":{"uid":61001,"pending":true}}}`)
			},
			steps: []applyStep{{
				desired: baseDesired(),
				cmds:    []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "usermod -G ops,rampart-managed alice", "groupadd -g 61002 bob", addBob},
			}},
		},
		{
			name: "ok/pending-private-group-reused",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("alice", 61001)
				writeTestState(t, f, `{"version":1,"users":{"alice":{"uid":61001,"pending":true}}}`)
			},
			steps: []applyStep{{desired: baseDesired(), cmds: []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", addAlice, "groupadd -g 61002 bob", addBob}}},
		},
		{
			name: "fail/pending-but-not-ours",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("alice", 61001)
				f.addUser(&fakeUser{name: "alice", uid: 61001, gid: 61001, gecos: "Alice Local", home: "/home/alice", shell: "/bin/bash", pw: "$6$x"})
				writeTestState(t, f, `{"version":1,"users":{"alice":{"uid":61001,"pending":true}}}`)
			},
			steps: []applyStep{{
				desired:  baseDesired(),
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "groupadd -g 61002 bob", addBob},
				problems: []wantProblem{{KindUser, "alice", ErrConflict}},
				check: func(t *testing.T, th *testHost, rep Report) {
					if readState(t, th).Users["alice"] != nil {
						t.Error("state still lists a foreign account")
					}
				},
			}},
		},
		{
			name: "fail/name-taken-by-unmanaged-account",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("alice", 1001)
				f.addUser(&fakeUser{name: "alice", uid: 1001, gid: 1001, gecos: "local", home: "/home/alice", shell: "/bin/sh", pw: "$6$hash", expire: "1"})
			},
			steps: []applyStep{
				{
					desired:  baseDesired(),
					cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "groupadd -g 61002 bob", addBob},
					problems: []wantProblem{{KindUser, "alice", ErrConflict}},
					check: func(t *testing.T, th *testHost, rep Report) {
						a := th.f.user("alice")
						if *a != (fakeUser{name: "alice", uid: 1001, gid: 1001, gecos: "local", home: "/home/alice", shell: "/bin/sh", pw: "$6$hash", expire: "1"}) {
							t.Errorf("the unmanaged alice was changed: %+v", a)
						}
					},
				},
				// Gone from Desired: still never touched.
				{desired: withoutAlice(), cmds: []string{}},
			},
		},
		{
			name:  "fail/uid-taken-by-unmanaged-account",
			setup: func(t *testing.T, f *fakeHost) { f.addUser(&fakeUser{name: "carol", uid: 61001, gid: 100}) },
			steps: []applyStep{{
				desired:  baseDesired(),
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "groupadd -g 61002 bob", addBob},
				problems: []wantProblem{{KindUser, "alice", ErrConflict}},
			}},
		},
		{
			name:  "fail/private-group-name-taken",
			setup: func(t *testing.T, f *fakeHost) { f.addGroup("alice", 3000) },
			steps: []applyStep{{
				desired:  baseDesired(),
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "groupadd -g 61002 bob", addBob},
				problems: []wantProblem{{KindUser, "alice", ErrConflict}},
			}},
		},
		{
			name:  "fail/group-taken-by-unmanaged-group",
			setup: func(t *testing.T, f *fakeHost) { f.addGroup("ops", 2000, "root") },
			steps: []applyStep{{
				desired: baseDesired(),
				cmds: []string{
					"groupadd -r rampart-managed", "groupadd -g 63002 dev",
					"groupadd -g 61001 alice", "useradd -u 61001 -g alice -G rampart-managed -m -d /home/alice -s /bin/bash -c rampart-managed -p * alice",
					"groupadd -g 61002 bob", "useradd -u 61002 -g bob -G dev,rampart-managed -m -d /home/bob -s /bin/bash -c rampart-managed -p * bob",
				},
				problems: []wantProblem{{KindGroup, "ops", ErrConflict}},
			}},
		},
		{
			name: "fail/taken-in-name-service-only",
			setup: func(t *testing.T, f *fakeHost) {
				f.nssOnly["passwd alice"] = "alice"
				f.nssOnly["group 63002"] = "ldapgroup"
			},
			steps: []applyStep{{
				desired:  baseDesired(),
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 61002 bob", "useradd -u 61002 -g bob -G ops,rampart-managed -m -d /home/bob -s /bin/bash -c rampart-managed -p * bob"},
				problems: []wantProblem{{KindUser, "alice", ErrConflict}, {KindGroup, "dev", ErrConflict}},
			}},
		},
		{
			name: "fail/useradd-fails-undone",
			setup: func(t *testing.T, f *fakeHost) {
				f.fail = func(argv []string) int {
					if argv[0] == "useradd" && argv[len(argv)-1] == "alice" {
						return 12
					}
					return 0
				}
			},
			steps: []applyStep{{
				desired:  baseDesired(),
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 63001 ops", "groupadd -g 63002 dev", "groupadd -g 61001 alice", addAlice, "groupdel alice", "groupadd -g 61002 bob", addBob},
				problems: []wantProblem{{KindUser, "alice", nil}},
				check: func(t *testing.T, th *testHost, rep Report) {
					if readState(t, th).Users["alice"] != nil || th.f.group("alice") != nil {
						t.Error("a failed creation left state or a group behind")
					}
				},
			}},
		},
		{
			name: "fail/renumbered-by-hand",
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired:  withAlice(func(u *User) { u.Shell = "/bin/zsh" }),
					before:   func(t *testing.T, f *fakeHost) { f.user("alice").uid = 61099 },
					cmds:     []string{"gpasswd -M bob ops"},
					problems: []wantProblem{{KindUser, "alice", ErrConflict}},
				},
			},
		},
		{
			name: "fail/renamed-waits-for-the-old-account",
			cfg:  func(c *Config) { c.DeleteGrace = time.Hour },
			steps: []applyStep{
				{desired: baseDesired(), cmds: createAll},
				{
					desired:  withAlice(func(u *User) { u.Name = "alice2" }),
					cmds:     deprovisionAlice,
					problems: []wantProblem{{KindUser, "alice2", ErrConflict}},
				},
				{
					desired: withAlice(func(u *User) { u.Name = "alice2" }), advance: time.Hour,
					cmds: append(slices.Clone(deprovisionAlice[1:]), "userdel alice", "groupadd -g 61001 alice2",
						"useradd -u 61001 -g alice2 -G ops,rampart-managed -m -d /home/alice2 -s /bin/bash -c rampart-managed -p * alice2"),
				},
			},
		},
		{
			name: "fail/invalid-names-and-ids",
			steps: []applyStep{{
				desired: Desired{
					Groups: []Group{{Name: "sudo", GID: 63001}, {Name: "low", GID: 10}, {Name: "ok-group", GID: 63005}, {Name: "dupgid", GID: 63005}, {Name: "x", GID: 61005}, {Name: ManagedGroup, GID: 63009}},
					Users: []User{
						{Name: "root", UID: 61001}, {Name: "daemon", UID: 61002}, {Name: "Alice", UID: 61003},
						{Name: "a b", UID: 61004}, {Name: "-rf", UID: 61005}, {Name: "x\nALL", UID: 61006},
						{Name: "abcdefghijklmnopqrstuvwxyz0123456", UID: 61007}, {Name: "lowuid", UID: 999},
						{Name: "nobodyid", UID: 65534}, {Name: "zero", UID: 0}, {Name: "bogus", UID: 61008, Status: "gone"},
						{Name: "relshell", UID: 61009, Shell: "bin/sh"}, {Name: "_apt2", UID: 61010}, {Name: "systemd-x", UID: 61011},
						{Name: "x", UID: 61005}, {Name: "x", UID: 61012},
					},
				},
				cmds: []string{"groupadd -r rampart-managed", "groupadd -g 63005 ok-group", "groupadd -g 61005 x", "useradd -u 61005 -g x -G rampart-managed -m -d /home/x -s /bin/bash -c rampart-managed -p * x"},
				problems: []wantProblem{
					{KindGroup, "sudo", ErrInvalid}, {KindGroup, "low", ErrInvalid}, {KindGroup, "dupgid", ErrInvalid}, {KindGroup, "x", ErrConflict}, {KindGroup, ManagedGroup, ErrInvalid},
					{KindUser, "root", ErrInvalid}, {KindUser, "daemon", ErrInvalid}, {KindUser, `"Alice"`, ErrInvalid},
					{KindUser, `"a b"`, ErrInvalid}, {KindUser, `"-rf"`, ErrInvalid}, {KindUser, `"x\nALL"`, ErrInvalid},
					{KindUser, "abcdefghijklmnopqrstuvwxyz0123456", ErrInvalid}, {KindUser, "lowuid", ErrInvalid},
					{KindUser, "nobodyid", ErrInvalid}, {KindUser, "zero", ErrInvalid}, {KindUser, "bogus", ErrInvalid},
					{KindUser, "relshell", ErrInvalid}, {KindUser, "_apt2", ErrInvalid}, {KindUser, "systemd-x", ErrInvalid},
					{KindUser, "x", ErrInvalid},
				},
			}},
		},
		{
			name: "fail/unknown-supplementary-group-skipped",
			steps: []applyStep{{
				desired:  Desired{Users: []User{{Name: "alice", UID: 61001, Groups: []string{"sudo", "nope"}}}},
				cmds:     []string{"groupadd -r rampart-managed", "groupadd -g 61001 alice", "useradd -u 61001 -g alice -G rampart-managed -m -d /home/alice -s /bin/bash -c rampart-managed -p * alice"},
				problems: []wantProblem{{KindUser, "alice", ErrInvalid}, {KindUser, "alice", ErrInvalid}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			th := newTestHost(t, f, tt.cfg)
			for i, st := range tt.steps {
				th.clock.Add(st.advance)
				if st.before != nil {
					st.before(t, f)
				}
				f.resetLog()
				rep, err := th.Apply(t.Context(), st.desired)
				if err != nil {
					t.Fatalf("step %d: Apply: %v", i+1, err)
				}
				if st.cmds != nil {
					equalLists(t, "step "+string(rune('1'+i))+" commands", accountCommands(f.commands()), st.cmds)
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

func writeTestState(t *testing.T, f *fakeHost, s string) {
	t.Helper()
	f.writeFile(t, "/var/lib/rampart-agent/managed.json", s, 0o600)
}

func TestStateFileRefusedWhenCorrupt(t *testing.T) {
	for _, tt := range []struct{ name, content string }{
		{"fail/not-json", "{"},
		{"fail/version", `{"version":2}`},
		{"fail/bad-name", `{"version":1,"users":{"../x":{"uid":61001}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(t)
			writeTestState(t, f, tt.content)
			th := newTestHost(t, f, nil)
			if _, err := th.Apply(t.Context(), baseDesired()); err == nil {
				t.Fatal("Apply with a corrupt state file succeeded")
			}
			if cmds := accountCommands(f.commands()); len(cmds) != 0 {
				t.Errorf("commands ran: %v", cmds)
			}
		})
	}
}

func TestNewRefusesRootWithRealRunner(t *testing.T) {
	_, err := New(Config{Root: t.TempDir()})
	if err == nil {
		t.Fatal("New accepted a Root with ExecRunner")
	}
	if !errors.Is(err, ErrUnsafeRoot) {
		t.Errorf("err = %v, want ErrUnsafeRoot", err)
	}
	if _, err := New(Config{SudoersDir: "/etc/sudoers.d/../x", DefaultShell: "sh", HomeOnDelete: "burn"}); err == nil {
		t.Fatal("New accepted a bad config")
	}
}
