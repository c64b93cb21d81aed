package auditexport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFiles: a token or key file that its group or others may read is
// refused, as the key-encryption key file is, and a webhook key shorter than
// MinHMACKeyBytes is refused whether it comes from a file or the
// environment; the problems never carry the secret.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("s", MinHMACKeyBytes)
	write := func(name, v string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("TEST_SHORT_KEY", "short-key")
	t.Setenv("TEST_LONG_KEY", long)
	hec := func(file string) SinkConfig {
		return SinkConfig{Name: "h", Type: KindHEC, URL: "https://splunk:8088", TokenFile: file}
	}
	hook := func(file, env string) SinkConfig {
		return SinkConfig{Name: "w", Type: KindWebhook, URL: "https://hooks", HMACKeyFile: file, HMACKeyEnv: env}
	}
	cases := []struct {
		name    string
		sink    SinkConfig
		problem string // "" for none
	}{
		{"ok/token-0600", hec(write("t600", "tok", 0o600)), ""},
		{"ok/token-0400", hec(write("t400", "tok", 0o400)), ""},
		{"fail/token-0640", hec(write("t640", "tok", 0o640)), "readable by others (mode 640): chmod 600 it"},
		{"fail/token-0604", hec(write("t604", "tok", 0o604)), "readable by others (mode 604)"},
		{"ok/key-file-long", hook(write("k600", long, 0o600), ""), ""},
		{"fail/key-file-0644", hook(write("k644", long, 0o644), ""), "readable by others"},
		{"fail/key-file-short", hook(write("kshort", "short-key", 0o600), ""), "9 bytes; at least 32 are required"},
		{"ok/key-env-long", hook("", "TEST_LONG_KEY"), ""},
		{"fail/key-env-short", hook("", "TEST_SHORT_KEY"), "9 bytes; at least 32 are required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(Problems([]SinkConfig{tc.sink}), "\n")
			if tc.problem == "" && got != "" || !strings.Contains(got, tc.problem) {
				t.Fatalf("problems %q, want %q", got, tc.problem)
			}
			if strings.Contains(got, "short-key") || strings.Contains(got, long) {
				t.Fatalf("problems carry the secret: %q", got)
			}
			_, err := Build([]SinkConfig{tc.sink}, "n1", nil)
			if (err == nil) != (tc.problem == "") {
				t.Fatalf("Build = %v, want refused %v", err, tc.problem != "")
			}
		})
	}
}
