package hostapply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The single-user host's files, as `make dev` lays them out in its data
// dir.
const (
	suDir        = "/home/dev/rampart/demo"
	suConfig     = suDir + "/sshd_config"
	suFiles      = suDir + "/agent/sshd" // made by the first pass
	suCAFile     = suFiles + "/user_ca_keys"
	suPrincipals = suFiles + "/principals"
	suHostKey    = suDir + "/ssh_host_ed25519_key.pub"
	suCert       = suFiles + "/rampart_host_ssh-ed25519-cert.pub"
)

// newSingleUserHost is a Host in single-user mode for the account dev, on
// a fake host whose only sshd files are the demo target's.
func newSingleUserHost(t *testing.T) *testHost {
	t.Helper()
	f := newFakeHost(t)
	f.addGroup("dev", 1000)
	f.addUser(&fakeUser{name: "dev", uid: 1000, gid: 1000, home: "/home/dev", shell: "/bin/bash", pw: "*"})
	f.writeFile(t, suConfig, "Port 22022\nUsePAM no\n", 0o600)
	f.writeFile(t, suHostKey, string(ssh.MarshalAuthorizedKey(f.hostKey.PublicKey())), 0o644)
	return newTestHost(t, f, func(c *Config) {
		c.SingleUser = "dev"
		c.StateFile = suDir + "/managed.json"
		c.SSHDConfig = suConfig
		c.TrustedCAKeysFile = suCAFile
		c.PrincipalsDir = suPrincipals
		c.HostCertDir = suFiles
		c.HostKeyFiles = []string{suHostKey}
		c.SSHDPidFile = suDir + "/sshd.pid"
	})
}

// fullDesired is everything the cluster can send: people, groups, a sudo
// rule, CA keys, a host certificate and shared logins.
func fullDesired(t *testing.T, f *fakeHost, ca ssh.PublicKey, shared ...string) Desired {
	d := baseDesired()
	d.Sudo = map[string]SudoRule{"ops": {Commands: []SudoCommand{{Path: "ALL"}}, NoPasswd: true, Users: []string{"alice"}}}
	d.TrustedCAKeys = []string{keyLine(ca)}
	d.HostCertificates = []string{signHostCert(t, newTestKey(t), f.hostKey.PublicKey())}
	d.SharedAccounts = shared
	return d
}

func TestSingleUser(t *testing.T) {
	ca := newTestKey(t).PublicKey()
	directives := "TrustedUserCAKeys " + suCAFile + "\nAuthorizedPrincipalsFile " + suPrincipals + "/%u\nHostCertificate " + suCert + "\nLogLevel VERBOSE\n"
	tests := []struct {
		name     string
		desired  func(t *testing.T, f *fakeHost) Desired
		before   func(t *testing.T, th *testHost)
		wantFile bool // dev's principals file
		withheld []string
		problems []wantProblem
	}{
		{
			name:     "ok/shared-login",
			desired:  func(t *testing.T, f *fakeHost) Desired { return fullDesired(t, f, ca, "deploy", "dev") },
			wantFile: true,
		},
		{
			name: "ok/person-with-the-account-name",
			desired: func(t *testing.T, f *fakeHost) Desired {
				d := fullDesired(t, f, ca)
				d.Users = append(d.Users, User{Name: "dev", UID: 61003})
				return d
			},
			wantFile: true,
		},
		{
			name: "ok/no-login-no-file",
			desired: func(t *testing.T, f *fakeHost) Desired {
				d := fullDesired(t, f, ca, "deploy")
				d.Users = append(d.Users, User{Name: "dev", UID: 61003, Status: StatusDisabled})
				return d
			},
			// A file left from an earlier state, and one the agent never
			// wrote, go: the directory is the agent's.
			before: func(t *testing.T, th *testHost) {
				th.f.writeFile(t, suPrincipals+"/dev", "dev\n", 0o644)
				th.f.writeFile(t, suPrincipals+"/alice", "alice\n", 0o644)
			},
		},
		{
			name:     "fail/sshd-refuses-no-new-access",
			desired:  func(t *testing.T, f *fakeHost) Desired { return fullDesired(t, f, ca, "dev") },
			before:   func(t *testing.T, th *testHost) { th.f.sshdReject = true },
			withheld: []string{"dev"},
			problems: []wantProblem{{KindSSHD, suConfig, ErrRejected}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newSingleUserHost(t)
			if tt.before != nil {
				tt.before(t, th)
			}
			rep, err := th.Apply(context.Background(), tt.desired(t, th.f))
			if err != nil {
				t.Fatal(err)
			}
			checkProblems(t, rep, tt.problems)
			equalLists(t, "withheld", rep.Withheld, tt.withheld)
			// Nothing but sshd's own checks ran: no account tool, no
			// visudo, no pkill, no systemctl.
			for _, c := range th.f.commands() {
				if !strings.HasPrefix(c, "/usr/sbin/sshd -") && !strings.HasPrefix(c, "sshd -") {
					t.Errorf("single-user mode ran %q", c)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(th.f.root, "etc/sudoers.d")); len(entries) > 0 {
				t.Errorf("single-user mode wrote sudoers.d: %v", entries)
			}
			if entries, _ := os.ReadDir(filepath.Join(th.f.root, "etc/ssh/sshd_config.d")); len(entries) > 0 {
				t.Errorf("single-user mode wrote the system's sshd drop-ins: %v", entries)
			}
			if _, ok := th.f.readFile(t, caFile); ok {
				t.Error("single-user mode wrote the system's CA keys file")
			}
			if tt.problems == nil {
				fileIs(t, th.f, suConfig, blockBegin+"\n"+directives+blockEnd+"\nPort 22022\nUsePAM no\n", 0o600)
				fileIs(t, th.f, suCAFile, fileHeader+keyLine(ca)+"\n", 0o644)
				if got, _ := th.f.readFile(t, suCert); !strings.HasPrefix(got, "ssh-ed25519-cert-v01@openssh.com ") {
					t.Errorf("host certificate file = %q", got)
				}
				if th.reloads.Load() != 1 {
					t.Errorf("reloads = %d, want 1", th.reloads.Load())
				}
			} else {
				fileIs(t, th.f, suConfig, "Port 22022\nUsePAM no\n", 0o600)
			}
			entries, err := os.ReadDir(filepath.Join(th.f.root, suPrincipals))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if tt.wantFile {
				equalLists(t, "principals files", names, []string{"dev"})
				fileIs(t, th.f, suPrincipals+"/dev", "dev\n", 0o644)
			} else {
				equalLists(t, "principals files", names, nil)
			}
		})
	}
}

// TestSingleUserRefuses: single-user mode never serves root, and never runs
// over a state file whose managed accounts it would abandon.
func TestSingleUserRefuses(t *testing.T) {
	f := newFakeHost(t)
	for _, name := range []string{"root", "Dev", "-x"} {
		if _, err := New(Config{Root: f.root, Runner: f, SingleUser: name}); err == nil || !strings.Contains(err.Error(), "single user") {
			t.Errorf("single user %q: err = %v", name, err)
		}
	}
	th := newSingleUserHost(t)
	th.f.writeFile(t, suDir+"/managed.json", `{"version":1,"users":{"alice":{"uid":61001}},"groups":{}}`, 0o600)
	if _, err := th.Apply(context.Background(), fullDesired(t, th.f, newTestKey(t).PublicKey(), "dev")); err == nil || !strings.Contains(err.Error(), "single-user mode manages none") {
		t.Errorf("apply over a state file with accounts: err = %v", err)
	}
	if _, ok := th.f.readFile(t, suPrincipals+"/dev"); ok {
		t.Error("a principals file was written")
	}
}
