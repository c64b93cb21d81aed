package fault

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestStatusOf(t *testing.T) {
	refused := Errorf(http.StatusForbidden, "token %s has expired", "t1")
	for _, tc := range []struct {
		name   string
		err    error
		status int
		ok     bool
	}{
		{"ok/direct", refused, http.StatusForbidden, true},
		{"ok/wrapped", fmt.Errorf("enroll web-1: %w", refused), http.StatusForbidden, true},
		{"ok/joined", errors.Join(errors.New("other"), refused), http.StatusForbidden, true},
		{"fail/plain", errors.New("disk full"), 0, false},
		{"fail/nil", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, ok := StatusOf(tc.err); status != tc.status || ok != tc.ok {
				t.Fatalf("StatusOf = %d, %v; want %d, %v", status, ok, tc.status, tc.ok)
			}
		})
	}
	var e *Error
	if !errors.As(fmt.Errorf("x: %w", refused), &e) || e.Msg != "token t1 has expired" || e.Error() != e.Msg || e.Code != "" {
		t.Fatalf("errors.As: %+v", e)
	}
}
