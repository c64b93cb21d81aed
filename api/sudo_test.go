package api

import (
	"errors"
	"strings"
	"testing"
)

// The rule's full case list lives with its two users (raftstore's
// TestEntitlementValidate, hostapply's TestCheckSudoRule), which run it
// through this code; here are the cases where the two copies once differed
// in their words, and the error's identity.
func TestEntitlementValidate(t *testing.T) {
	restart := []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}
	cmd := func(path string, args ...string) []SudoCommand { return []SudoCommand{{Path: path, Args: args}} }
	cases := []struct {
		name    string
		ent     Entitlement
		wantMsg string // "": valid
	}{
		{name: "ok/command-with-args", ent: Entitlement{Name: "restart-nginx", Commands: restart}},
		{name: "ok/all", ent: Entitlement{Name: "admin", Commands: []SudoCommand{{Path: SudoAllCommands}}}},
		{name: "ok/no-args", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: "/usr/sbin/reboot", Args: []string{}}}}},
		{name: "ok/equals-in-arg", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/tool", "--a=b")}},
		{name: "fail/name-newline", ent: Entitlement{Name: "x\nALL", Commands: restart}, wantMsg: `entitlement name "x\nALL": want`},
		{name: "fail/name-long-cut", ent: Entitlement{Name: strings.Repeat("\x01", 100), Commands: restart}, wantMsg: `\x01...: want`},
		{name: "fail/no-commands", ent: Entitlement{Name: "e"}, wantMsg: "no commands"},
		{name: "fail/all-beside-another", ent: Entitlement{Name: "e", Commands: []SudoCommand{{Path: SudoAllCommands}, {Path: "/bin/ls"}}}, wantMsg: "ALL must be the only command"},
		{name: "fail/arg-not-utf8", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "\xff")}, wantMsg: "command 1: /bin/echo: argument 1 is not UTF-8"},
		{name: "fail/arg-control", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "a\x1b")}, wantMsg: "argument 1 holds a control character"},
		{name: "fail/arg-space", ent: Entitlement{Name: "e", Commands: cmd("/bin/echo", "a b")}, wantMsg: "holds whitespace; give each argument separately"},
		{name: "fail/path-dir", ent: Entitlement{Name: "e", Commands: cmd("/usr/bin/")}, wantMsg: "trailing slash"},
		{name: "fail/run-as", ent: Entitlement{Name: "e", Commands: restart, RunAs: "root) ALL"}, wantMsg: "is not a POSIX user name"},
		{name: "fail/env-keep-default-run-as", ent: Entitlement{Name: "e", Commands: restart, EnvKeep: []string{"LD_PRELOAD"}}, wantMsg: "keeping LD_PRELOAD would let the user run code as root"},
		{name: "fail/env-keep-run-as", ent: Entitlement{Name: "e", Commands: restart, RunAs: "postgres", EnvKeep: []string{"PATH"}}, wantMsg: "run code as postgres"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ent.Validate()
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSudoRule) {
				t.Fatalf("err = %v, want ErrSudoRule", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %q, want it to say %q", err, tc.wantMsg)
			}
			if strings.ContainsAny(err.Error(), "\n\x00\x01\x1b") || len(err.Error()) > 300 {
				t.Fatalf("message carries raw control characters or is unbounded: %q", err)
			}
		})
	}
}
