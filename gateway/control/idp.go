package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rampart-ssh/rampart/raftstore"
)

// DeactivateFromIdP disables a person because the identity provider says
// they are gone, through via (raftstore.ViaSCIM: active=false or DELETE;
// raftstore.ViaRevalidation: a refused re-validation): the account is marked
// disabled by the IdP through via (agents lock it, new logins are refused
// with login.ErrDeactivatedInIdP), every device binding is revoked (which
// ends the sessions opened with them on every node), and the change is
// audited once with why, the IdP's answer. It returns how many bindings were
// revoked. A person already disabled, by the IdP or an administrator, keeps
// that disable (the FSM makes it so even when a disable lands between this
// read and the write); their bindings still go, and a repeat that revokes
// nothing is not audited again.
func (s *Service) DeactivateFromIdP(ctx context.Context, a Actor, id string, via raftstore.DisabledVia, why string) (int, error) {
	u, err := user(s.state(ctx), id)
	if err != nil {
		return 0, err
	}
	if u.Status == raftstore.UserDeleted {
		return 0, nil
	}
	already := u.Status != raftstore.UserActive
	if !already {
		if _, err := s.apply(ctx, &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserDisabled, ByIdP: true, Via: via, Now: s.now().UTC()}); err != nil {
			return 0, err
		}
	}
	var n int
	if err := s.applyDecode(ctx, &raftstore.BindingDelete{UserID: u.ID}, &n); err != nil {
		return 0, fmt.Errorf("user %s is deactivated, but their bindings were not removed: %w", u.Login, err)
	}
	if already && n == 0 {
		return 0, nil
	}
	fields := map[string]string{"user": u.Login, "user_id": u.ID, "reason": why, "via": string(via), "bindings_revoked": strconv.Itoa(n)}
	if aerr := s.audit(ctx, a, EventUserDeactivate, fields); aerr != nil {
		return n, errors.Join(errors.New(errNotAudited), aerr)
	}
	s.logger.Info("identity provider deactivated a person", "user", u.Login, "user_id", u.ID, "via", string(via), "reason", why, "bindings_revoked", n)
	return n, nil
}

// ReactivateFromIdP restores, for SCIM (active=true), a person SCIM had
// deactivated, with the same unix name and uid. A person an administrator
// disabled, or whom a refused re-validation deactivated, stays disabled:
// SCIM undoes only its own deactivation, and only an administrator's
// `users enable` undoes the others. The FSM checks the condition when it
// applies the change, so an administrator's disable that lands after this
// read is kept. The returned bool says whether anything changed.
func (s *Service) ReactivateFromIdP(ctx context.Context, a Actor, id string) (bool, error) {
	u, err := user(s.state(ctx), id)
	if err != nil {
		return false, err
	}
	if u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
		return false, nil
	}
	actx, cancel := context.WithTimeout(ctx, s.applyTimeout)
	defer cancel()
	_, err = s.store.Apply(actx, &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserActive, IfDisabledVia: raftstore.ViaSCIM, Now: s.now().UTC()})
	switch {
	case errors.Is(err, raftstore.ErrConflict):
		return false, nil
	case err != nil:
		return false, clientError(err)
	}
	if aerr := s.audit(ctx, a, EventUserReactivate, map[string]string{"user": u.Login, "user_id": u.ID}); aerr != nil {
		return true, errors.Join(errors.New(errNotAudited), aerr)
	}
	return true, nil
}
