package cli

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client/sshsetup"
)

func testCAKey(t *testing.T, seed byte) string {
	t.Helper()
	pub, err := gossh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub)))
}

func testConfig(t *testing.T) *Config {
	return &Config{API: "https://bastion.example.com:8443", Pin: "sha256:00", Setup: api.ClientSetup{
		JumpHost: "bastion.example.com", NodeNames: []string{"bastion.example.com"}, HostPatterns: []string{"*.prod.example.com"},
		NodeHostCAKeys: []string{testCAKey(t, 1)}, HostCAKeys: []string{testCAKey(t, 2)}}}
}

// TestNoteWhoamiRefusesHostileNames: a unix name or server name from the
// bastion that breaks its rule (a newline and a ProxyCommand) is refused,
// and the config keeps what it had.
func TestNoteWhoamiRefusesHostileNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		who  api.Whoami
		ok   bool
	}{
		{"ok/plain", api.Whoami{UnixName: "alice", Servers: []api.Destination{{Name: "web-2"}, {Name: "db-1.internal"}}}, true},
		{"fail/unix-name-newline", api.Whoami{UnixName: "alice\n  ProxyCommand sh -c id\nHost x"}, false},
		{"fail/unix-name-root", api.Whoami{UnixName: "root"}, false},
		{"fail/server-newline", api.Whoami{UnixName: "alice", Servers: []api.Destination{{Name: "web-2\n  ProxyCommand sh"}}}, false},
		{"fail/server-wildcard", api.Whoami{UnixName: "alice", Servers: []api.Destination{{Name: "*"}}}, false},
		{"fail/server-list", api.Whoami{UnixName: "alice", Servers: []api.Destination{{Name: "web-2,github.com"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{UnixName: "bob", Servers: []string{"web-1"}}
			err := cfg.noteWhoami(&tc.who)
			if (err == nil) != tc.ok {
				t.Fatalf("noteWhoami = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (cfg.UnixName != "alice" || !slices.Equal(cfg.Servers, []string{"db-1.internal", "web-2"})) {
				t.Errorf("config = %+v", cfg)
			}
			if !tc.ok && (cfg.UnixName != "bob" || !slices.Equal(cfg.Servers, []string{"web-1"})) {
				t.Errorf("a refused whoami changed the config: %+v", cfg)
			}
		})
	}
}

// editingReader is a person who edits known_hosts while the diff is on
// the screen, then answers yes.
type editingReader struct {
	path   string
	edited bool
	answer strings.Reader
}

func (r *editingReader) Read(p []byte) (int, error) {
	if !r.edited {
		r.edited = true
		if err := os.WriteFile(r.path, []byte("github.com ssh-ed25519 AAAAgh\n"), 0o600); err != nil {
			return 0, err
		}
		r.answer.Reset("y\n")
	}
	return r.answer.Read(p)
}

// TestSetupReplansBeforeWriting: a file edited while the person reads the
// diff is not overwritten with what was computed before the edit.
func TestSetupReplansBeforeWriting(t *testing.T) {
	home := t.TempDir()
	e := &env{home: home, paths: sshsetup.PathsFor(home)}
	if err := os.Mkdir(e.sshDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	changes, _, err := sshsetup.Plan(e.paths, e.desired(cfg))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{in: &editingReader{path: e.paths.KnownHosts}, out: io.Discard, err: io.Discard, interactive: true}
	if err := a.writeChanges(e, cfg, changes, false); !errors.Is(err, errChangedMeanwhile) {
		t.Fatalf("writeChanges = %v, want errChangedMeanwhile", err)
	}
	if b, _ := os.ReadFile(e.paths.KnownHosts); string(b) != "github.com ssh-ed25519 AAAAgh\n" {
		t.Errorf("known_hosts = %q, want the person's edit kept", b)
	}
	for _, f := range []string{e.paths.Included, e.paths.SSHConfig} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written", f)
		}
	}
	// Nothing edited: the changes shown are written.
	changes, _, _ = sshsetup.Plan(e.paths, e.desired(cfg))
	if err := (&app{out: io.Discard, err: io.Discard}).writeChanges(e, cfg, changes, true); err != nil {
		t.Fatal(err)
	}
	if left, _, _ := sshsetup.Plan(e.paths, e.desired(cfg)); len(left) != 0 {
		t.Errorf("after writing, %d changes are left", len(left))
	}
}

// TestSetupDrift: a host CA rotation (a key added or replaced) and a
// changed jump host are drift; the same setup in another order is not.
func TestSetupDrift(t *testing.T) {
	written := testConfig(t).Setup
	same := written
	same.NodeNames = []string{"bastion.example.com"}
	if d := setupDrift(&written, &same); d != "" {
		t.Errorf("same setup: drift %q", d)
	}
	rotated := written
	rotated.HostCAKeys = []string{testCAKey(t, 2), testCAKey(t, 3)}
	if d := setupDrift(&written, &rotated); !strings.Contains(d, "host CA keys changed") {
		t.Errorf("a new host CA key: drift %q", d)
	}
	moved := written
	moved.JumpHost = "bastion-2.example.com"
	if d := setupDrift(&written, &moved); !strings.Contains(d, "jump host") {
		t.Errorf("a new jump host: drift %q", d)
	}
}

// TestServersShowSharedLogins: the shared logins a person may use show
// beside their own, in the table and in JSON.
func TestServersShowSharedLogins(t *testing.T) {
	who := &api.Whoami{UnixName: "alice", Servers: []api.Destination{{Name: "web-1", Project: "web", Logins: []string{"deploy"}}}}
	for output, want := range map[string]string{"table": "alice (also: deploy)", "json": `"logins": [`} {
		var b bytes.Buffer
		if err := (&app{out: &b}).printServers(filterServers(who, nil), output); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("servers -o %s lacks %q:\n%s", output, want, b.String())
		}
	}
}
