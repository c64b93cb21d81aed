package adminshell

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// An admin the IdP takes out of the admin group (seen at their
// re-validation or next sign-in: their token groups change) loses the shell
// as a disabled one does: at the prompt, and during a running command.
// A change of another group keeps it.
func TestSessionEndsWhenAdminLeavesAdminGroup(t *testing.T) {
	leave := func(h *harness, groups ...string) {
		h.apply(&raftstore.UserUpsert{User: raftstore.User{ID: "sub-alice", Login: "alice", Email: "alice@example.com", UnixName: "alice", Groups: groups}, Now: h.now})
	}
	t.Run("fail/interactive-at-prompt", func(t *testing.T) {
		h := newHarness(t)
		h.actor.AdminGroup = "rampart-admins"
		s := startTerm(t, h)
		s.expect(Prompt)
		leave(h, "rampart-admins") // left eng: still an admin
		if out := s.line("whoami"); !strings.Contains(out, "sub-alice") {
			t.Fatalf("after a change of another group:\n%q", out)
		}
		leave(h, "eng")
		s.expect("you are no longer in the admin group; the admin shell is closed.")
		if code := s.exit(); code != ExitError {
			t.Errorf("exit %d", code)
		}
	})
	t.Run("fail/one-shot-follow", func(t *testing.T) {
		h := newHarness(t)
		h.actor.AdminGroup = "rampart-admins"
		var out syncBuf
		done := make(chan int, 1)
		go func() {
			done <- h.sh.RunCommand(t.Context(), h.actor, []string{"audit", "tail", "-f", "-n", "1"}, &out, io.Discard)
		}()
		waitOutput(t, &out, "session.open")
		leave(h, "eng")
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("audit tail -f ran on after the admin left the admin group")
		}
	})
}
