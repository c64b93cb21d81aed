package fault

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestStatusOf(t *testing.T) {
	err := Errorf(http.StatusConflict, "project %s exists", "web")
	if err.Error() != "project web exists" {
		t.Errorf("message %q", err)
	}
	if e := err.(*Error); e.Code != "" {
		t.Errorf("code %q, want none", e.Code)
	}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		ok     bool
	}{
		{"ok/fault", err, http.StatusConflict, true},
		{"ok/wrapped", fmt.Errorf("saving: %w", err), http.StatusConflict, true},
		{"fail/plain", errors.New("boom"), 0, false},
		{"fail/nil", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, ok := StatusOf(tc.err); status != tc.status || ok != tc.ok {
				t.Errorf("StatusOf = %d, %v; want %d, %v", status, ok, tc.status, tc.ok)
			}
		})
	}
}
