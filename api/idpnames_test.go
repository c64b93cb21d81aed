package api

import (
	"errors"
	"strings"
	"testing"
)

func TestBaseUnixName(t *testing.T) {
	cases := []struct {
		name, login, want string
	}{
		{"ok/plain", "alice", "alice"},
		{"ok/email", "Jane.Doe@Example.com", "jane_doe"},
		{"ok/underscore-dash", "bob_smith-2", "bob_smith-2"},
		{"ok/32-chars", strings.Repeat("a", 32), strings.Repeat("a", 32)},
		{"fail/root", "root", ""},
		// The agent's group for certificates-only accounts.
		{"fail/agent-managed-group", "rampart-managed", ""},
		{"fail/root-email", "root@example.com", ""},
		{"fail/sshd", "SSHD", ""},
		{"fail/admin", "admin", ""},
		// Reserved by the agent, once given out by the cluster.
		{"fail/qemu", "qemu", ""},
		{"fail/libvirt-email", "LibVirt@example.com", ""},
		{"fail/debian-underscore-prefix", "_svc", ""},
		{"fail/systemd-prefix", "systemd-resolve", ""},
		{"fail/dot-dot-slash", "../x", ""},
		{"fail/newline", "alice\nroot", ""},
		{"fail/space", "alice smith", ""},
		{"fail/200-chars", strings.Repeat("a", 200), ""},
		{"fail/leading-digit", "1alice", ""},
		{"fail/leading-dash", "-alice", ""},
		{"fail/unicode", "zoë", ""},
		{"fail/empty", "", ""},
		{"fail/only-domain", "@example.com", ""},
		{"fail/colon", "a:b", ""},
		{"fail/nul", "a\x00b", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseUnixName(tc.login)
			if tc.want == "" {
				if !errors.Is(err, ErrUnsafeName) {
					t.Fatalf("BaseUnixName(%q) = %q, %v; want a refusal", tc.login, got, err)
				}
				if strings.ContainsAny(err.Error(), "\n\x00") {
					t.Fatalf("refusal message carries raw control characters: %q", err.Error())
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("BaseUnixName(%q) = %q, %v; want %q", tc.login, got, err, tc.want)
			}
		})
	}
}

func TestResolveCollision(t *testing.T) {
	taken := map[string]bool{"alice": true, "alice-2": true}
	got, err := ResolveCollision("alice", func(n string) (bool, error) { return taken[n], nil })
	if err != nil || got != "alice-3" {
		t.Fatalf("got %q, %v; want alice-3", got, err)
	}
	long := strings.Repeat("b", 32)
	got, err = ResolveCollision(long, func(n string) (bool, error) { return n == long, nil })
	if err != nil || got != strings.Repeat("b", 30)+"-2" || len(got) > MaxUnixNameLen {
		t.Fatalf("got %q, %v; want a 32-character name ending -2", got, err)
	}
	// Every suffix of "systemd" is reserved (prefix systemd-): a second
	// person is refused rather than given a name the agent will not create.
	if got, err := ResolveCollision("systemd", func(n string) (bool, error) { return n == "systemd", nil }); !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("got %q, %v; want a refusal", got, err)
	}
}
