package jump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
)

// Every refusal the jump gives has a reason label of its own, and the
// errors that carry one keep the message the person is shown.
func TestDecisionReason(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"fail/not-enrolled", fmt.Errorf("web-9: %w", ErrNotEnrolled), "not_enrolled"},
		{"fail/forbidden", fmt.Errorf("%w: 169.254.169.254", targetaddr.ErrForbidden), "forbidden_address"},
		{"fail/project", ErrNotInProject, "not_in_project"},
		{"fail/login", fmt.Errorf("%w: root", ErrLoginDenied), "login_denied"},
		{"fail/inactive", ErrUserInactive, "user_inactive"},
		{"fail/port", ErrWrongPort, "wrong_port"},
		{"fail/binding", ErrBindingRevoked, "binding_revoked"},
		{"fail/agent", &agentBehindError{server: "web-1"}, "agent_behind"},
		{"fail/identity", fmt.Errorf("%w (web-1); refusing to connect", ErrTargetIdentity), "target_identity"},
		{"fail/host-cert", fmt.Errorf("%w (web-1, project web); refusing to connect", ErrNoHostCert), "no_host_certificate"},
		{"fail/mint", errMint, "mint_failed"},
		{"fail/unreachable", &reasoned{msg: "cannot reach web-1: the server does not answer", reason: errUnreachable}, "target_unreachable"},
		{"fail/target-refused", &reasoned{msg: `web-1 refused the login "alice"`, reason: errTargetRefused}, "target_refused_login"},
		{"fail/other", errors.New("something inside"), "other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := decisionReason(tc.err); got != tc.want {
				t.Fatalf("decisionReason(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
	if e := (&reasoned{msg: "cannot reach web-1", reason: errUnreachable}); e.Error() != "cannot reach web-1" {
		t.Fatalf("message %q changed", e.Error())
	}
}
