package login

import (
	"log/slog"
	"strings"
	"testing"
)

// An e-mail is verified only when the configured claim says so, as JSON
// true or the string "true"; anything else, or no e-mail, is unverified.
func TestClaimMappingEmailVerified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claim  string // ClaimMapping.EmailVerified ("" = email_verified)
		claims map[string]any
		want   bool
	}{
		{"ok/bool-true", "", map[string]any{"email": "a@x", "email_verified": true}, true},
		{"ok/string-true", "", map[string]any{"email": "a@x", "email_verified": "True"}, true},
		{"ok/entra-xms_edov", "xms_edov", map[string]any{"email": "a@x", "xms_edov": true}, true},
		{"fail/absent", "", map[string]any{"email": "a@x"}, false},
		{"fail/false", "", map[string]any{"email": "a@x", "email_verified": false}, false},
		{"fail/string-yes", "", map[string]any{"email": "a@x", "email_verified": "yes"}, false},
		{"fail/other-claim-configured", "xms_edov", map[string]any{"email": "a@x", "email_verified": true}, false},
		{"fail/no-email", "", map[string]any{"email_verified": true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.claims["preferred_username"] = "alice"
			id, err := ClaimMapping{EmailVerified: tc.claim}.Map("iss", "sub", tc.claims, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if id.EmailVerified != tc.want {
				t.Fatalf("EmailVerified = %v, want %v (%+v)", id.EmailVerified, tc.want, id)
			}
		})
	}
}

// A login that is not plain client text is refused at sign-in: it would be
// written into every audit event and export of the person, where a newline
// forges a record.
func TestClaimMappingLoginText(t *testing.T) {
	for _, tc := range []struct {
		name  string
		login string
		ok    bool
	}{
		{"ok/plain", "alice", true},
		{"ok/unicode", "zoë", true},
		{"ok/longest", strings.Repeat("a", 256), true},
		{"fail/newline", "alice\n<14>1 2026-01-01T00:00:00Z forged", false},
		{"fail/carriage-return", "alice\r", false},
		{"fail/escape", "alice\x1b[2J", false},
		{"fail/nul", "alice\x00", false},
		{"fail/invalid-utf8", "alice\xff", false},
		{"fail/too-long", strings.Repeat("a", 257), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ClaimMapping{}.Map("iss", "sub", map[string]any{"preferred_username": tc.login}, slog.New(slog.DiscardHandler))
			if tc.ok != (err == nil) {
				t.Fatalf("Map(%q) = %v, want ok %v", tc.login, err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "control characters")) {
				t.Fatalf("message %q: want the rule, not the login", err)
			}
		})
	}
}
