package hostapply

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestIncludesDropIn(t *testing.T) {
	h := &Host{cfg: Config{SSHDConfig: "/etc/ssh/sshd_config", SSHDDropIn: "/etc/ssh/sshd_config.d/rampart.conf"}}
	tests := []struct {
		name, config string
		want         bool
	}{
		{"ok/debian", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n", true},
		{"ok/relative", "include sshd_config.d/*.conf\n", true},
		{"ok/equals-and-quotes", "Include=\"/etc/ssh/sshd_config.d/*.conf\"\n", true},
		{"ok/one-of-several", "Include /etc/ssh/other/*.conf /etc/ssh/sshd_config.d/rampart.conf\n", true},
		{"fail/none", "UsePAM yes\n", false},
		{"fail/commented", "#Include /etc/ssh/sshd_config.d/*.conf\n", false},
		{"fail/other-dir", "Include /etc/ssh/conf.d/*.conf\n", false},
		{"fail/inside-match", "Match User x\n  Include /etc/ssh/sshd_config.d/*.conf\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.includesDropIn([]byte(tt.config)); got != tt.want {
				t.Errorf("includesDropIn = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWithBlock(t *testing.T) {
	block := blockBegin + "\nA b\n" + blockEnd + "\n"
	tests := []struct {
		name, config, directives, want string
		fail                           bool
	}{
		{name: "ok/insert-at-top", config: "UsePAM yes\nMatch User x\n  X y\n", directives: "A b\n", want: block + "UsePAM yes\nMatch User x\n  X y\n"},
		{name: "ok/replace", config: "Port 22\n" + blockBegin + "\nOld 1\n" + blockEnd + "\nUsePAM yes\n", directives: "A b\n", want: block + "Port 22\nUsePAM yes\n"},
		{name: "ok/remove", config: block + "UsePAM yes\n", directives: "", want: "UsePAM yes\n"},
		{name: "ok/nothing-to-remove", config: "UsePAM yes\n", directives: "", want: "UsePAM yes\n"},
		{name: "fail/no-end", config: blockBegin + "\nA b\nUsePAM yes\n", directives: "A b\n", fail: true},
		{name: "fail/two-blocks", config: block + block, directives: "A b\n", fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withBlock([]byte(tt.config), tt.directives)
			if tt.fail {
				if err == nil {
					t.Fatalf("accepted; got:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

const (
	dropIn  = "/etc/ssh/sshd_config.d/00-rampart.conf"
	caFile  = "/etc/ssh/rampart_user_ca_keys"
	certOut = "/etc/ssh/rampart_host_ssh-ed25519-cert.pub"
)

// certOnly is the block that closes every way but a certificate into the
// managed accounts.
const certOnly = "Match Group rampart-managed\n\tAuthorizedKeysFile none\n\tAuthorizedKeysCommand none\n" + personalKeysOnly + "Match all\n"

const personalKeysOnly = "\tAuthenticationMethods publickey\n\tPasswordAuthentication no\n\tKbdInteractiveAuthentication no\n"

func keyLine(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }

func TestApplySSHD(t *testing.T) {
	ca1, ca2, hostCA := newTestKey(t), newTestKey(t), newTestKey(t)
	directives := func(withCert bool) string {
		s := "TrustedUserCAKeys " + caFile + "\nAuthorizedPrincipalsFile /etc/ssh/rampart_principals/%u\n"
		if withCert {
			s += "HostCertificate " + certOut + "\n"
		}
		return s + "LogLevel VERBOSE\n" + certOnly
	}
	type step struct {
		desired  func(f *fakeHost) Desired
		before   func(t *testing.T, th *testHost)
		reloads  int32 // total so far
		problems []wantProblem
		withheld []string
		check    func(t *testing.T, th *testHost)
	}
	withKeys := func(keys ...string) func(*fakeHost) Desired {
		return func(f *fakeHost) Desired {
			d := baseDesired()
			d.TrustedCAKeys = keys
			return d
		}
	}
	certs := map[*fakeHost]string{} // one certificate per host, as the cluster keeps it
	withCert := func(f *fakeHost) Desired {
		d := withKeys(keyLine(ca1.PublicKey()) + " comment")(f)
		if certs[f] == "" {
			certs[f] = signHostCert(t, hostCA, f.hostKey.PublicKey())
		}
		d.HostCertificates = []string{certs[f]}
		return d
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fakeHost)
		steps []step
	}{
		{
			name: "ok/drop-in-then-unchanged",
			steps: []step{
				{desired: withCert, reloads: 1, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+directives(true), 0o644)
					fileIs(t, th.f, caFile, fileHeader+keyLine(ca1.PublicKey())+"\n", 0o644)
					got, _ := th.f.readFile(t, certOut)
					if !strings.HasPrefix(got, "ssh-ed25519-cert-v01@openssh.com ") {
						t.Errorf("host certificate file = %q", got)
					}
					fileIs(t, th.f, "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n", 0o644)
				}},
				{desired: withCert, reloads: 1},
				// A CA rotation is read at each login: no reload.
				{desired: func(f *fakeHost) Desired {
					d := withCert(f)
					d.TrustedCAKeys = append(d.TrustedCAKeys, keyLine(ca2.PublicKey()))
					return d
				}, reloads: 1, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, caFile, fileHeader+keyLine(ca1.PublicKey())+"\n"+keyLine(ca2.PublicKey())+"\n", 0o644)
				}},
				// The host certificate goes: its file and line too.
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 2, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+directives(false), 0o644)
					if _, ok := th.f.readFile(t, certOut); ok {
						t.Error("the stale host certificate was kept")
					}
				}},
				// Drift: the drop-in deleted by hand.
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 3,
					before: func(t *testing.T, th *testHost) { os.Remove(filepath.Join(th.f.root, dropIn)) },
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, dropIn, fileHeader+directives(false), 0o644)
					}},
			},
		},
		{
			name:  "ok/marked-block-without-include",
			setup: func(t *testing.T, f *fakeHost) { f.writeFile(t, "/etc/ssh/sshd_config", "UsePAM no\n", 0o600) },
			steps: []step{
				{desired: withCert, reloads: 1, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, "/etc/ssh/sshd_config", blockBegin+"\n"+directives(true)+blockEnd+"\nUsePAM no\n", 0o600)
					if _, ok := th.f.readFile(t, dropIn); ok {
						t.Error("a drop-in was written though sshd_config does not include it")
					}
				}},
				{desired: withCert, reloads: 1},
				// An Include appears: the block moves to the drop-in.
				{desired: withCert, reloads: 2,
					before: func(t *testing.T, th *testHost) {
						b, _ := th.f.readFile(t, "/etc/ssh/sshd_config")
						th.f.writeFile(t, "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n"+b, 0o600)
					},
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\n", 0o600)
						fileIs(t, th.f, dropIn, fileHeader+directives(true), 0o644)
					}},
			},
		},
		{
			name: "fail/sshd-t-refuses-previous-files-restored",
			steps: []step{
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 1},
				{
					desired: func(f *fakeHost) Desired {
						d := withCert(f)
						d.TrustedCAKeys = []string{keyLine(ca2.PublicKey())} // ca1 revoked
						return d
					},
					before:   func(t *testing.T, th *testHost) { th.f.sshdReject = true },
					reloads:  1,
					problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, dropIn, fileHeader+directives(false), 0o644)
						if _, ok := th.f.readFile(t, certOut); ok {
							t.Error("the host certificate of a refused config was kept")
						}
						// A revoked CA stays revoked, whatever sshd -t says.
						fileIs(t, th.f, caFile, fileHeader+keyLine(ca2.PublicKey())+"\n", 0o644)
					},
				},
			},
		},
		{
			name: "fail/overridden-by-earlier-setting",
			steps: []step{{
				desired:  withKeys(keyLine(ca1.PublicKey())),
				before:   func(t *testing.T, th *testHost) { th.f.sshdTExtra = "AuthorizedPrincipalsFile none\n" },
				problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
				withheld: []string{"alice", "bob"},
				check: func(t *testing.T, th *testHost) {
					if _, ok := th.f.readFile(t, dropIn); ok {
						t.Errorf("%s kept after a failed check", dropIn)
					}
					// The CA keys file is not part of sshd's config.
					fileIs(t, th.f, caFile, fileHeader+keyLine(ca1.PublicKey())+"\n", 0o644)
				},
			}},
		},
		{
			name: "fail/invalid-inputs-refuse-everything",
			steps: []step{
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 1},
				{desired: withKeys(keyLine(ca2.PublicKey()), "not a key"), reloads: 1,
					problems: []wantProblem{{KindSSHD, "trusted CA keys", ErrInvalid}},
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, caFile, fileHeader+keyLine(ca1.PublicKey())+"\n", 0o644)
					}},
				{desired: withKeys(keyLine(ca2.PublicKey()) + "\n" + keyLine(ca1.PublicKey())), reloads: 1,
					problems: []wantProblem{{KindSSHD, "trusted CA keys", ErrInvalid}}},
				{desired: withKeys(`command="/bin/sh" ` + keyLine(ca2.PublicKey())), reloads: 1,
					problems: []wantProblem{{KindSSHD, "trusted CA keys", ErrInvalid}}},
				{desired: func(f *fakeHost) Desired {
					d := withKeys(signHostCert(t, hostCA, ca2.PublicKey()))(f)
					return d
				}, reloads: 1, problems: []wantProblem{{KindSSHD, "trusted CA keys", ErrInvalid}}},
				{desired: func(f *fakeHost) Desired {
					d := withKeys(keyLine(ca2.PublicKey()))(f)
					d.HostCertificates = []string{keyLine(f.hostKey.PublicKey())}
					return d
				}, reloads: 1, problems: []wantProblem{{KindSSHD, "host certificates", ErrInvalid}}},
			},
		},
		{
			name: "fail/host-certificate-for-another-key-skipped",
			steps: []step{{
				desired: func(f *fakeHost) Desired {
					d := withKeys(keyLine(ca1.PublicKey()))(f)
					d.HostCertificates = []string{signHostCert(t, hostCA, newTestKey(t).PublicKey())}
					return d
				},
				reloads:  1,
				problems: []wantProblem{{KindSSHD, "host certificates", ErrInvalid}},
				check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+directives(false), 0o644)
				},
			}},
		},
		{
			// Only certificates open a managed account: the block matches
			// the group the agent keeps them in (disabled ones too), so a
			// new person changes no sshd file and costs no reload; the
			// project's personal-keys setting does change the block.
			name: "ok/managed-accounts-certificates-only",
			steps: []step{
				{desired: withCert, reloads: 1, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+directives(true), 0o644)
				}},
				{desired: func(f *fakeHost) Desired {
					d := withCert(f)
					d.Users = append(d.Users, User{Name: "carol", UID: 61003}, User{Name: "alice", UID: 61001, Status: StatusDisabled})
					d.Users = d.Users[1:]
					return d
				}, reloads: 1, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+directives(true), 0o644)
					equalLists(t, "members of "+ManagedGroup, slices.Sorted(slices.Values(th.f.group(ManagedGroup).members)), []string{"alice", "bob", "carol"})
					if got, _ := th.f.readFile(t, "/etc/ssh/rampart_principals/carol"); got != "carol\n" {
						t.Errorf("carol's principals file = %q", got)
					}
				}},
				{desired: func(f *fakeHost) Desired {
					d := withCert(f)
					d.AllowPersonalKeys = true
					return d
				}, reloads: 2, check: func(t *testing.T, th *testHost) {
					b, _ := th.f.readFile(t, dropIn)
					if !strings.HasSuffix(b, "LogLevel VERBOSE\nMatch Group rampart-managed\n"+personalKeysOnly+"Match all\n") {
						t.Errorf("drop-in with personal keys allowed:\n%s", b)
					}
				}},
			},
		},
		{
			name: "ok/no-managed-accounts-same-block",
			steps: []step{{
				desired: func(f *fakeHost) Desired { return Desired{TrustedCAKeys: []string{keyLine(ca1.PublicKey())}} },
				reloads: 1,
				check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, dropIn, fileHeader+"TrustedUserCAKeys "+caFile+"\nAuthorizedPrincipalsFile /etc/ssh/rampart_principals/%u\nLogLevel VERBOSE\n"+certOnly, 0o644)
				},
			}},
		},
		{
			// A Match block sshd reads first wins for the accounts it names:
			// sshd -T -C shows it, and the agent refuses the change.
			name: "fail/earlier-match-lets-keys-in",
			steps: []step{{
				desired: withKeys(keyLine(ca1.PublicKey())),
				before: func(t *testing.T, th *testHost) {
					th.f.sshdTExtra = "Match User alice\nAuthorizedKeysFile .ssh/authorized_keys\nMatch all\n"
				},
				problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
				withheld: []string{"alice", "bob"},
				check: func(t *testing.T, th *testHost) {
					if _, ok := th.f.readFile(t, dropIn); ok {
						t.Errorf("%s kept after a failed check", dropIn)
					}
				},
			}},
		},
		{
			// An agent of before the group: its drop-in rampart.conf (which
			// sorts after a site's 10-*.conf) listed the names. The accounts
			// join the group, keep their principals file, and the old
			// drop-in goes.
			name: "ok/upgrade-from-match-user",
			setup: func(t *testing.T, f *fakeHost) {
				f.addGroup("alice", 61001)
				f.addUser(&fakeUser{name: "alice", uid: 61001, gid: 61001, gecos: Marker, home: "/home/alice", shell: "/bin/bash", pw: "*"})
				writeTestState(t, f, `{"version":1,"users":{"alice":{"uid":61001}}}`)
				f.writeFile(t, "/etc/ssh/sshd_config.d/rampart.conf", fileHeader+"Match User alice\n\tAuthorizedKeysFile none\nMatch all\n", 0o644)
				f.writeFile(t, "/etc/ssh/sshd_config.d/rampart-site.conf", "# not the agent's\n", 0o644)
				f.writeFile(t, "/etc/ssh/rampart_principals/alice", "alice\n", 0o644)
			},
			steps: []step{{
				desired: withKeys(keyLine(ca1.PublicKey())),
				reloads: 1,
				check: func(t *testing.T, th *testHost) {
					if g := th.f.group(ManagedGroup); g == nil || !slices.Contains(g.members, "alice") {
						t.Errorf("alice, managed before the group, is not in it: %+v", g)
					}
					if _, ok := th.f.readFile(t, "/etc/ssh/sshd_config.d/rampart.conf"); ok {
						t.Error("the old drop-in rampart.conf was kept")
					}
					if _, ok := th.f.readFile(t, "/etc/ssh/sshd_config.d/rampart-site.conf"); !ok {
						t.Error("a drop-in that is not the agent's was removed")
					}
					fileIs(t, th.f, dropIn, fileHeader+directives(false), 0o644)
					fileIs(t, th.f, "/etc/ssh/rampart_principals/alice", "alice\n", 0o644)
				},
			}},
		},
		{
			// A site drop-in's Match Address block sorts after the agent's
			// (00-rampart.conf), so the agent's settings are the ones sshd
			// uses from those addresses too.
			name: "ok/drop-in-sorts-before-site-drop-ins",
			setup: func(t *testing.T, f *fakeHost) {
				f.writeFile(t, "/etc/ssh/sshd_config.d/10-site.conf", "Match Address 10.0.0.0/8\n\tAuthorizedKeysFile .ssh/authorized_keys\n", 0o644)
			},
			steps: []step{{
				desired: withKeys(keyLine(ca1.PublicKey())),
				reloads: 1,
				check: func(t *testing.T, th *testHost) {
					got := th.f.sshdEffective("/etc/ssh/sshd_config", "alice", "10.1.2.3")
					if !strings.Contains(got, "authorizedkeysfile none\n") {
						t.Errorf("sshd -T -C user=alice,addr=10.1.2.3:\n%s", got)
					}
					fileIs(t, th.f, "/etc/ssh/rampart_principals/alice", "alice\n", 0o644)
				},
			}},
		},
		{
			// A drop-in that sorts before the agent's and lets keys back in
			// from a private range only: the check asks from more than
			// loopback and refuses it.
			name: "fail/earlier-match-address-lets-keys-in",
			setup: func(t *testing.T, f *fakeHost) {
				f.writeFile(t, "/etc/ssh/sshd_config.d/00-aaa.conf", "Match Address 10.0.0.0/8\n\tAuthorizedKeysFile .ssh/authorized_keys\n", 0o644)
			},
			steps: []step{{
				desired:  withKeys(keyLine(ca1.PublicKey())),
				problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
				withheld: []string{"alice", "bob"},
				check: func(t *testing.T, th *testHost) {
					if _, ok := th.f.readFile(t, dropIn); ok {
						t.Errorf("%s kept after a failed check", dropIn)
					}
					noPrincipals(t, th, "alice", "bob")
				},
			}},
		},
		{
			// sshd refuses the config: the accounts exist but no
			// certificate opens them, and the pass says so.
			name: "fail/sshd-refused-no-principals",
			steps: []step{{
				desired:  withKeys(keyLine(ca1.PublicKey())),
				before:   func(t *testing.T, th *testHost) { th.f.sshdReject = true },
				problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
				withheld: []string{"alice", "bob"},
				check:    func(t *testing.T, th *testHost) { noPrincipals(t, th, "alice", "bob") },
			}},
		},
		{
			// Someone adds a drop-in that wins over the agent's after it
			// was verified: the next pass finds it though the agent's files
			// did not change, and takes certificate access away.
			name: "fail/drift-earlier-drop-in-takes-access-away",
			steps: []step{
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 1},
				{
					desired: withKeys(keyLine(ca1.PublicKey())),
					before: func(t *testing.T, th *testHost) {
						th.f.writeFile(t, "/etc/ssh/sshd_config.d/0-site.conf", "Match Address 192.0.2.0/24\n\tPasswordAuthentication yes\n", 0o644)
					},
					reloads:  1,
					problems: []wantProblem{{KindSSHD, "/etc/ssh/sshd_config", ErrRejected}},
					withheld: []string{"alice", "bob"},
					check:    func(t *testing.T, th *testHost) { noPrincipals(t, th, "alice", "bob") },
				},
			},
		},
		{
			// sshd's files are verified but its reload fails: the sshd that
			// runs holds the accounts that have a principals file to
			// certificates only, not a new one, which waits.
			name: "fail/reload-fails-new-account-waits",
			steps: []step{
				{desired: withKeys(keyLine(ca1.PublicKey())), reloads: 1},
				{
					desired: func(f *fakeHost) Desired {
						d := withCert(f)
						d.Users = append(d.Users, User{Name: "carol", UID: 61003})
						return d
					},
					before:   func(t *testing.T, th *testHost) { th.reloadErr = os.ErrPermission },
					reloads:  2,
					problems: []wantProblem{{KindSSHD, "reload", nil}},
					withheld: []string{"carol"},
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, "/etc/ssh/rampart_principals/alice", "alice\n", 0o644)
						noPrincipals(t, th, "carol")
					},
				},
				{
					desired: func(f *fakeHost) Desired {
						d := withCert(f)
						d.Users = append(d.Users, User{Name: "carol", UID: 61003})
						return d
					},
					before:  func(t *testing.T, th *testHost) { th.reloadErr = nil },
					reloads: 3,
					check: func(t *testing.T, th *testHost) {
						fileIs(t, th.f, "/etc/ssh/rampart_principals/carol", "carol\n", 0o644)
					},
				},
			},
		},
		{
			name: "ok/failed-reload-retried",
			steps: []step{
				{desired: withCert, reloads: 1, before: func(t *testing.T, th *testHost) { th.reloadErr = os.ErrPermission },
					problems: []wantProblem{{KindSSHD, "reload", nil}}, withheld: []string{"alice", "bob"}},
				{desired: withCert, reloads: 2, before: func(t *testing.T, th *testHost) { th.reloadErr = nil }, check: func(t *testing.T, th *testHost) {
					fileIs(t, th.f, "/etc/ssh/rampart_principals/alice", "alice\n", 0o644)
				}},
				{desired: withCert, reloads: 2},
			},
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
					st.before(t, th)
				}
				rep, err := th.Apply(t.Context(), st.desired(f))
				if err != nil {
					t.Fatalf("step %d: Apply: %v", i+1, err)
				}
				checkProblems(t, rep, st.problems)
				equalLists(t, "withheld", rep.Withheld, st.withheld)
				if got := th.reloads.Load(); got != st.reloads {
					t.Errorf("reloads = %d, want %d", got, st.reloads)
				}
				if st.check != nil {
					st.check(t, th)
				}
				if t.Failed() {
					t.Fatalf("step %d failed; report: %+v", i+1, rep)
				}
			}
		})
	}
}

// noPrincipals fails if any of names has a principals file.
func noPrincipals(t *testing.T, th *testHost, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, ok := th.f.readFile(t, "/etc/ssh/rampart_principals/"+n); ok {
			t.Errorf("%s has a principals file", n)
		}
	}
}
