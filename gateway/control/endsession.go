package control

import (
	"context"
	"strings"

	"github.com/rampart-ssh/rampart/raftstore"
)

// EndReasonSep separates, in a killed session's end reason, who ended it
// from the reason they gave; the jump shows the person what follows it.
const EndReasonSep = ", reason: "

// maxEndReason bounds the reason an administrator gives.
const maxEndReason = 200

// EndSession ends a live session on whichever node carries it, like
// KillSession, with a reason the person is shown as their ssh ends (the
// console's End button). It is audited as EventSessionKill with the reason.
func (s *Service) EndSession(ctx context.Context, a Actor, id, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxEndReason || strings.ContainsFunc(reason, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return invalid("a reason of 1 to %d characters on one line is required", maxEndReason)
	}
	st := s.state(ctx)
	_, sess, err := st.SessionByID(nil, id)
	if err != nil {
		return err
	}
	if sess == nil {
		return notFound("session %q: not found", id)
	}
	if sess.Status != raftstore.SessionActive {
		return conflict("session %s has already ended", id)
	}
	if _, err := s.apply(ctx, &raftstore.SessionClose{ID: id, End: s.now().UTC(), EndReason: "ended by administrator " + a.Name + EndReasonSep + reason}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventSessionKill, map[string]string{"session": id, "reason": reason})
}
