package api

import (
	"errors"
	"strings"
	"testing"
)

func TestIsPOSIXName(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want bool
	}{
		{"ok/plain", "alice", true},
		{"ok/underscore-start", "_svc", true},
		{"ok/digits-dash", "ci-runner2", true},
		{"ok/root-is-posix", "root", true},
		{"ok/32-chars", strings.Repeat("a", 32), true},
		{"fail/empty", "", false},
		{"fail/33-chars", strings.Repeat("a", 33), false},
		{"fail/digit-start", "1alice", false},
		{"fail/dash-start", "-alice", false},
		{"fail/upper", "Alice", false},
		{"fail/dot", "alice.smith", false},
		{"fail/at", "alice@example.com", false},
		{"fail/space", "alice smith", false},
		{"fail/dollar", "machine$", false},
		{"fail/colon", "a:b", false},
		{"fail/newline", "a\n", false},
		{"fail/nul", "alice\x00", false},
		{"fail/non-ascii", "zoë", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPOSIXName(tc.in); got != tc.want {
				t.Fatalf("IsPOSIXName(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidUnixName(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error // nil: valid
	}{
		{"ok/plain", "alice", nil},
		{"ok/dash-digits", "jane-doe2", nil},
		{"ok/systemd-without-dash", "systemd", nil},
		{"ok/32-chars", strings.Repeat("a", 32), nil},
		{"fail/not-posix-upper", "Alice", ErrNotPOSIXName},
		{"fail/not-posix-digit-first", "2fa", ErrNotPOSIXName},
		{"fail/not-posix-33-chars", strings.Repeat("a", 33), ErrNotPOSIXName},
		{"fail/not-posix-newline", "a\nroot", ErrNotPOSIXName},
		{"fail/root", "root", ErrReservedUnixName},
		{"fail/daemon", "daemon", ErrReservedUnixName},
		// qemu was reserved by the agent but not by the cluster, which gave
		// it to a person whose IdP login was qemu.
		{"fail/qemu", "qemu", ErrReservedUnixName},
		{"fail/sudo-group", "sudo", ErrReservedUnixName},
		{"fail/wheel-group", "wheel", ErrReservedUnixName},
		{"fail/agent-managed-group", "rampart-managed", ErrReservedUnixName},
		{"fail/cloud-default-login", "ec2-user", ErrReservedUnixName},
		{"fail/debian-underscore-prefix", "_apt", ErrReservedUnixName},
		{"fail/underscore-prefix", "_svc", ErrReservedUnixName},
		{"fail/systemd-prefix", "systemd-network", ErrReservedUnixName},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidUnixName(tc.in)
			if tc.want == nil {
				if err != nil || IsReservedUnixName(tc.in) {
					t.Fatalf("ValidUnixName(%q) = %v (reserved %v), want valid", tc.in, err, IsReservedUnixName(tc.in))
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("ValidUnixName(%q) = %v, want %v", tc.in, err, tc.want)
			}
			if (tc.want == ErrReservedUnixName) != IsReservedUnixName(tc.in) {
				t.Fatalf("IsReservedUnixName(%q) = %v", tc.in, IsReservedUnixName(tc.in))
			}
			if strings.ContainsAny(err.Error(), "\n\x00") {
				t.Fatalf("message carries raw control characters: %q", err.Error())
			}
		})
	}
}

// Every reserved name is itself a POSIX name (a typo in the list, such as an
// uppercase letter, would reserve nothing), and is refused.
func TestReservedUnixNamesArePOSIX(t *testing.T) {
	if len(reservedUnixNames) < 50 {
		t.Fatalf("only %d reserved names", len(reservedUnixNames))
	}
	for n := range reservedUnixNames {
		if !IsPOSIXName(n) {
			t.Errorf("reserved name %q is not a POSIX name", n)
		}
		if !errors.Is(ValidUnixName(n), ErrReservedUnixName) {
			t.Errorf("ValidUnixName(%q) = %v", n, ValidUnixName(n))
		}
	}
}
