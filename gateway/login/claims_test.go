package login

import (
	"log/slog"
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
