package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
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
