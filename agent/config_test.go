package agent

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/rampart-ssh/rampart/agent/hostapply"
)

// A value that does not decode, an unknown key and a value that does not
// validate are reported together, each once.
func TestLoadConfigListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	yaml := "name: web-1\naddr: 192.0.2.10\nhost_key_files: [/etc/ssh/ssh_host_ed25519_key.pub]\n" +
		"poll_wait: 10x\nhome_on_delete: shred\ntoken_fille: /x\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("rampart-agent", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse([]string{"-c", path}); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(fs)
	if err == nil {
		t.Fatal("config accepted")
	}
	for _, want := range []string{"token_fille: unknown key", `poll_wait: "10x" is not valid here`, `home_on_delete "shred"`} {
		if n := strings.Count(err.Error(), want); n != 1 {
			t.Errorf("error mentions %q %d times, want once:\n%v", want, n, err)
		}
	}
	if strings.Contains(err.Error(), "poll_wait 0s") {
		t.Errorf("poll_wait reported again with its zero value:\n%v", err)
	}
}

// Single-user mode needs its sshd's files and an unprivileged account, and
// its settings are refused in the normal mode.
func TestSingleUserConfig(t *testing.T) {
	base := Config{DataDir: "/home/dev/rampart/agent", Name: "demo", Addr: "127.0.0.1", SSHPort: 22022,
		HostKeyFiles: []string{"/home/dev/rampart/demo/ssh_host_ed25519_key.pub"}, HomeOnDelete: "keep",
		PollWait: time.Minute, LoginLog: "off"}
	single := func(c *Config) {
		c.SingleUser, c.SSHDConfig, c.SSHDPidFile = true, "/home/dev/rampart/demo/sshd_config", "/home/dev/rampart/demo/sshd.pid"
	}
	tests := []struct {
		name string
		euid int
		mod  func(*Config)
		want string // "" for valid
	}{
		{name: "ok/normal", euid: 0},
		{name: "ok/single-user", euid: 1000, mod: single},
		{name: "fail/single-user-as-root", euid: 0, mod: single, want: "runs as root"},
		{name: "fail/single-user-without-sshd-files", euid: 1000, mod: func(c *Config) { c.SingleUser = true },
			want: `sshd_config "": single_user needs`},
		{name: "fail/single-user-relative-data-dir", euid: 1000, mod: func(c *Config) { single(c); c.DataDir = "data" }, want: "data_dir"},
		{name: "fail/sshd-config-in-normal-mode", euid: 0, mod: func(c *Config) { c.SSHDConfig = "/etc/ssh/sshd_config" },
			want: "sshd_config is set: it is only for single_user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, oldUser := geteuid, currentUser
			geteuid = func() int { return tt.euid }
			currentUser = func() (*user.User, error) { return &user.User{Username: "dev", Uid: "1000"}, nil }
			t.Cleanup(func() { geteuid, currentUser = old, oldUser })
			c := base
			if tt.mod != nil {
				tt.mod(&c)
			}
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if err != nil {
				return
			}
			hc := c.HostConfig(nil)
			if !c.SingleUser {
				if hc.SingleUser != "" || hc.SSHDConfig != "" || hc.PrincipalsDir != "" {
					t.Errorf("a normal agent's host config has single-user settings: %+v", hc)
				}
				return
			}
			if hc.SingleUser != "dev" || hc.SSHDConfig != c.SSHDConfig || hc.PrincipalsDir != "/home/dev/rampart/agent/sshd/principals" ||
				hc.StateFile != "/home/dev/rampart/agent/managed.json" {
				t.Errorf("single-user host config: %+v", hc)
			}
			if _, err := hostapply.New(hc); err != nil {
				t.Errorf("hostapply refuses it: %v", err)
			}
		})
	}
}
