package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rampart-ssh/rampart/raftstore"
)

// users, their device bindings and their sessions.

func user(st *raftstore.State, id string) (*raftstore.User, error) {
	_, u, err := st.UserByID(nil, id)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, notFound("user %q: not found", id)
	}
	return u, nil
}

// SetUserStatus disables (raftstore.UserDisabled) or enables
// (raftstore.UserActive) the user of id. Disabling refuses sign-ins and ends
// the user's live sessions on every node; a deleted user stays deleted.
func (s *Service) SetUserStatus(ctx context.Context, a Actor, id string, to raftstore.UserStatus) (*raftstore.User, error) {
	var verb, typ string
	switch to {
	case raftstore.UserDisabled:
		verb, typ = "disable", EventUserDisable
	case raftstore.UserActive:
		verb, typ = "enable", EventUserEnable
	default:
		return nil, invalid("status %q is not %s or %s", to, raftstore.UserDisabled, raftstore.UserActive)
	}
	u, err := user(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	if u.Status == raftstore.UserDeleted {
		return nil, conflict("user %s is deleted; a deleted user cannot be %sd", u.Login, verb)
	}
	var stored raftstore.User
	if err := s.applyDecode(ctx, &raftstore.UserSetStatus{ID: u.ID, Status: to, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, typ, map[string]string{"user": u.Login, "user_id": u.ID})
}

// DeleteUser deletes the user of id and revokes their device bindings (the
// uid is never reused); it returns how many bindings were revoked.
func (s *Service) DeleteUser(ctx context.Context, a Actor, id string, c Confirm) (int, error) {
	u, err := user(s.state(ctx), id)
	if err != nil {
		return 0, err
	}
	if err := confirm(c, "delete user "+u.Login+" and their device bindings"); err != nil {
		return 0, err
	}
	if _, err := s.apply(ctx, &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserDeleted, Now: s.now().UTC()}); err != nil {
		return 0, err
	}
	var n int
	err = s.applyDecode(ctx, &raftstore.BindingDelete{UserID: u.ID}, &n)
	if err != nil {
		err = fmt.Errorf("user %s is deleted, but their bindings were not removed: %w", u.Login, err)
	}
	if aerr := s.audit(ctx, a, EventUserDelete, map[string]string{"user": u.Login, "user_id": u.ID, "bindings_revoked": strconv.Itoa(n)}); aerr != nil {
		return n, errors.Join(err, aerr)
	}
	return n, err
}

// Bindings chooses the device bindings to revoke: exactly one of a key's
// fingerprint, a user's id, or all of them.
type Bindings struct {
	Fingerprint string
	UserID      string
	All         bool
}

// RevokeBindings unbinds keys and ends the sessions opened with them; the
// next login goes through the IdP again. Only revoking all of them is
// confirmed. It returns how many were revoked and what they were ("binding
// SHA256:...", "the device bindings of bob", "all device bindings").
func (s *Service) RevokeBindings(ctx context.Context, a Actor, b Bindings, c Confirm) (n int, what string, err error) {
	given := 0
	for _, set := range []bool{b.Fingerprint != "", b.UserID != "", b.All} {
		if set {
			given++
		}
	}
	if given != 1 {
		return 0, "", invalid("name exactly one of a fingerprint, a user or all bindings")
	}
	st := s.state(ctx)
	cmd := &raftstore.BindingDelete{All: b.All}
	fields := map[string]string{}
	switch {
	case b.Fingerprint != "":
		_, bd, err := st.BindingByFingerprint(nil, b.Fingerprint)
		if err != nil {
			return 0, "", err
		}
		if bd == nil {
			return 0, "", notFound("binding %q: not found", b.Fingerprint)
		}
		cmd.Fingerprint, fields["fingerprint"], fields["user_id"] = bd.Fingerprint, bd.Fingerprint, bd.UserID
		what = "binding " + bd.Fingerprint
	case b.UserID != "":
		u, err := user(st, b.UserID)
		if err != nil {
			return 0, "", err
		}
		cmd.UserID, fields["user"], fields["user_id"] = u.ID, u.Login, u.ID
		what = "the device bindings of " + u.Login
	default:
		fields["scope"] = "all"
		what = "all device bindings"
		if err := confirm(c, "revoke every device binding of every user"); err != nil {
			return 0, "", err
		}
	}
	if err := s.applyDecode(ctx, cmd, &n); err != nil {
		return 0, "", err
	}
	fields["revoked"] = strconv.Itoa(n)
	return n, what, s.audit(ctx, a, EventBindingRevoke, fields)
}

// KillSession ends a live session: the node carrying it watches for closes
// of its sessions and ends it at once.
func (s *Service) KillSession(ctx context.Context, a Actor, id string, c Confirm) error {
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
	who := sess.UserID
	if _, u, err := st.UserByID(nil, sess.UserID); err == nil && u != nil {
		who = u.Login
	}
	if err := confirm(c, "end session "+id+" of "+who); err != nil {
		return err
	}
	if _, err := s.apply(ctx, &raftstore.SessionClose{ID: id, End: s.now().UTC(), EndReason: "ended by administrator " + a.Name}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventSessionKill, map[string]string{"session": id})
}
