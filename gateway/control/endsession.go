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
	// The person's terminal shows the reason: a control character (C0,
	// DEL, C1 such as CSI U+009B or OSC U+009D) or a format one (bidi
	// overrides, zero-width) would act on it or hide what it says.
	if reason == "" || len(reason) > maxEndReason || strings.ContainsFunc(reason, unprintable) {
		return invalid("a reason of 1 to %d characters on one line, without control or formatting characters, is required", maxEndReason)
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
