package control

import (
	"context"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// EndSession refuses a reason the person's terminal would act on or that
// would read as something else: C0 and C1 controls, DEL, and format
// characters (bidi overrides, zero-width ones). The session stays live.
func TestEndSessionReasonRefusesControls(t *testing.T) {
	for _, tc := range []struct{ name, reason string }{
		{"fail/newline", "bye\nnow"},
		{"fail/del", "bye\x7f"},
		{"fail/c1-csi", "bye \u009b2J"},
		{"fail/c1-osc", "bye \u009d0;title\u0007"},
		{"fail/bidi-override", "bye \u202eevil"},
		{"fail/zero-width-space", "by\u200be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			err := h.svc.EndSession(context.Background(), testActor, "sess-live", tc.reason)
			if err == nil {
				t.Fatalf("reason %q accepted", tc.reason)
			}
			_, s, serr := h.store.State().SessionByID(nil, "sess-live")
			if serr != nil || s == nil || s.Status != raftstore.SessionActive {
				t.Fatalf("the session is not live after a refused reason: %+v %v", s, serr)
			}
		})
	}
	t.Run("ok/plain-unicode", func(t *testing.T) {
		h := newHarness(t)
		if err := h.svc.EndSession(context.Background(), testActor, "sess-live", "maintenance: café closing"); err != nil {
			t.Fatal(err)
		}
	})
}
