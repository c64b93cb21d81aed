package frontdoor

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/login"
)

// TestUserMessageOfIdPErrors: what the IdP answered reaches the person with
// its own message, even wrapped; only an unreachable IdP is called that.
func TestUserMessageOfIdPErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{name: "fail/unreachable", err: login.ErrIdPUnavailable},
		{name: "fail/access-denied", err: login.ErrDenied},
		{name: "fail/expired-token", err: login.ErrCodeExpired},
		{name: "fail/invalid-grant", err: login.ErrCodeRejected},
		{name: "fail/server-error", err: login.ErrIdPFailed},
		{name: "fail/client-refused", err: login.ErrIdPRefused},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := userMessage(fmt.Errorf("device flow: %w", tc.err))
			if msg != tc.err.Error() {
				t.Fatalf("userMessage = %q, want %q", msg, tc.err.Error())
			}
			if seen[msg] {
				t.Fatalf("message %q is shared with another error", msg)
			}
			seen[msg] = true
			if reachable := !errors.Is(tc.err, login.ErrIdPUnavailable); reachable && strings.Contains(msg, "cannot be reached") {
				t.Fatalf("an IdP that answered is reported unreachable: %q", msg)
			}
		})
	}
}
