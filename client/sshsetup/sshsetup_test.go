package sshsetup

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// Host CA keys of the tests, as authorized_keys lines.
var (
	nodeCAKey = caKey(1)
	hostCAKey = caKey(2)
)

func caKey(seed byte) string {
	pub, err := gossh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
}

func desired() Desired {
	return Desired{
		Cluster: "https://10.0.0.5:8443", JumpHost: "bastion.example.com:2222",
		NodeNames:      []string{"10.0.0.5", "[10.0.0.5]:2222", "[bastion.example.com]:2222", "bastion.example.com"},
		NodeHostCAKeys: []string{nodeCAKey}, HostCAKeys: []string{hostCAKey + "\n"},
		HostPatterns: []string{"*.prod.example.com"},
	}
}

// setup plans and applies d under home, as `rampart setup` does, and
// returns how many files changed.
func setup(t *testing.T, p Paths, d Desired) int {
	t.Helper()
	changes, st, err := Plan(p, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) > 0 {
		if err := SaveState(p, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := Apply(changes); err != nil {
		t.Fatal(err)
	}
	return len(changes)
}

func remove(t *testing.T, p Paths) {
	t.Helper()
	changes, err := PlanRemove(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(changes); err != nil {
		t.Fatal(err)
	}
	if err := RemoveState(p); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestSetupAndRemove: setup adds its blocks around the person's content,
// a second run changes nothing, and a removal gives every file back byte
// for byte (or deletes the files setup created).
func TestSetupAndRemove(t *testing.T) {
	for _, tc := range []struct {
		name               string
		config, knownHosts *string
	}{
		{"ok/no-files", nil, nil},
		{"ok/user-content", ptr("# mine\nHost github.com\n  User git\n"), ptr("github.com ssh-ed25519 AAAAgh\n")},
		{"ok/no-final-newline", ptr("Host *\n  ServerAliveInterval 30"), ptr("github.com ssh-ed25519 AAAAgh")},
		{"ok/empty-files", ptr(""), ptr("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PathsFor(t.TempDir())
			if tc.config != nil {
				write(t, p.SSHConfig, *tc.config)
			}
			if tc.knownHosts != nil {
				write(t, p.KnownHosts, *tc.knownHosts)
			}
			if n := setup(t, p, desired()); n != 3 {
				t.Fatalf("first setup changed %d files, want 3", n)
			}
			cfg, kh := read(t, p.SSHConfig), read(t, p.KnownHosts)
			if !strings.HasPrefix(cfg, beginMark) || !strings.Contains(cfg, "Include \""+p.Included+"\"\n") {
				t.Errorf("ssh config does not start with the Include block:\n%s", cfg)
			}
			if tc.config != nil && !strings.HasSuffix(cfg, *tc.config) {
				t.Errorf("ssh config lost the person's content:\n%s", cfg)
			}
			if tc.knownHosts != nil && !strings.HasPrefix(kh, *tc.knownHosts) {
				t.Errorf("known_hosts lost the person's content:\n%s", kh)
			}
			for _, want := range []string{
				"@cert-authority 10.0.0.5,[10.0.0.5]:2222,[bastion.example.com]:2222,bastion.example.com " + nodeCAKey + "\n",
				"@cert-authority *.prod.example.com,!10.0.0.5,![10.0.0.5]:2222,![bastion.example.com]:2222,!bastion.example.com " + hostCAKey + "\n",
			} {
				if !strings.Contains(kh, want) {
					t.Errorf("known_hosts lacks %q:\n%s", want, kh)
				}
			}
			before := snapshot(t, p)
			if n := setup(t, p, desired()); n != 0 {
				t.Fatalf("second setup changed %d files", n)
			}
			if after := snapshot(t, p); after != before {
				t.Fatalf("second setup changed the files:\n%s\n----\n%s", before, after)
			}
			remove(t, p)
			checkRestored(t, p.SSHConfig, tc.config)
			checkRestored(t, p.KnownHosts, tc.knownHosts)
			for _, f := range []string{p.Included, p.State} {
				if exists(f) {
					t.Errorf("%s is still there after the removal", f)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

func snapshot(t *testing.T, p Paths) string {
	t.Helper()
	return read(t, p.SSHConfig) + "\x00" + read(t, p.KnownHosts) + "\x00" + read(t, p.Included)
}

// checkRestored: path holds want byte for byte, or is gone when want is nil.
func checkRestored(t *testing.T, path string, want *string) {
	t.Helper()
	if want == nil {
		if exists(path) {
			t.Errorf("%s was created by setup and is still there: %q", path, read(t, path))
		}
		return
	}
	if got := read(t, path); got != *want {
		t.Errorf("%s after removal = %q, want %q", path, got, *want)
	}
}

// TestSetupUpdatesOnlyItsBlock: new server names change the included file
// and the known_hosts block only; lines the person adds after setup stay
// through a later setup and the removal.
func TestSetupUpdatesOnlyItsBlock(t *testing.T) {
	p := PathsFor(t.TempDir())
	write(t, p.SSHConfig, "Host a\n  User x\n")
	write(t, p.KnownHosts, "a ssh-ed25519 AAAAa\n")
	setup(t, p, desired())
	// The person adds lines of their own, before and after the blocks.
	write(t, p.SSHConfig, read(t, p.SSHConfig)+"Host b\n  User y\n")
	write(t, p.KnownHosts, "z ssh-ed25519 AAAAz\n"+read(t, p.KnownHosts)+"b ssh-ed25519 AAAAb\n")
	d := desired()
	d.Servers, d.UnixName, d.IdentityFile = []string{"web-1"}, "alice", "/h/.ssh/rampart_ed25519"
	changes, _, err := Plan(p, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Path != p.Included || changes[1].Path != p.KnownHosts {
		t.Fatalf("changes = %v, want the included file and known_hosts", changes)
	}
	if err := Apply(changes); err != nil {
		t.Fatal(err)
	}
	if kh, want := read(t, p.KnownHosts), "@cert-authority *.prod.example.com,web-1,!10.0.0.5,"; !strings.Contains(kh, want) {
		t.Errorf("known_hosts lacks %q:\n%s", want, kh)
	}
	inc := read(t, p.Included)
	for _, want := range []string{
		"Host *.prod.example.com web-1 !10.0.0.5 !bastion.example.com\n  ProxyJump bastion.example.com:2222\n  User alice\n",
		"Host 10.0.0.5 bastion.example.com\n  Port 2222\n  User alice\n  IdentityFile \"/h/.ssh/rampart_ed25519\"\n  IdentitiesOnly yes\n",
	} {
		if !strings.Contains(inc, want) {
			t.Errorf("included file lacks %q:\n%s", want, inc)
		}
	}
	remove(t, p)
	checkRestored(t, p.SSHConfig, ptr("Host a\n  User x\nHost b\n  User y\n"))
	checkRestored(t, p.KnownHosts, ptr("z ssh-ed25519 AAAAz\na ssh-ed25519 AAAAa\nb ssh-ed25519 AAAAb\n"))
}

// TestEditedBlockRefused: a block whose end marker the person deleted is
// not guessed at, neither by setup nor by the removal.
func TestEditedBlockRefused(t *testing.T) {
	p := PathsFor(t.TempDir())
	setup(t, p, desired())
	kh := read(t, p.KnownHosts)
	write(t, p.KnownHosts, strings.Replace(kh, endMark, "# the end", 1))
	if _, _, err := Plan(p, desired()); !errors.Is(err, ErrBlockEdited) {
		t.Errorf("setup over an edited block: err = %v, want ErrBlockEdited", err)
	}
	if _, err := PlanRemove(p); !errors.Is(err, ErrBlockEdited) {
		t.Errorf("removal of an edited block: err = %v, want ErrBlockEdited", err)
	}
}

// TestSymlinkedConfigKept: an ssh config that is a symlink (a dotfiles
// repository) stays one; its target gets the block.
func TestSymlinkedConfigKept(t *testing.T) {
	home := t.TempDir()
	p := PathsFor(home)
	real := filepath.Join(home, "dotfiles", "ssh_config")
	write(t, real, "Host a\n")
	if err := os.Mkdir(filepath.Dir(p.SSHConfig), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, p.SSHConfig); err != nil {
		t.Fatal(err)
	}
	setup(t, p, desired())
	if fi, err := os.Lstat(p.SSHConfig); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("ssh config is no longer a symlink (%v)", err)
	}
	if !strings.HasPrefix(read(t, real), beginMark) {
		t.Errorf("the symlink's target has no block:\n%s", read(t, real))
	}
	remove(t, p)
	checkRestored(t, real, ptr("Host a\n"))
}

// TestDiff: a change reads as a unified diff, a new file from /dev/null.
func TestDiff(t *testing.T) {
	c := Change{Path: "/h/.ssh/config", New: []byte("x\n")}
	if d := c.Diff(); !strings.Contains(d, "--- /dev/null") || !strings.Contains(d, "+x") {
		t.Errorf("diff = %q", d)
	}
}
