package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rampart-ssh/rampart/raftstore"
)

// DeactivateFromIdP disables a person because the identity provider says
// they are gone (SCIM active=false or DELETE, or a refused re-validation):
// the account is marked disabled by the IdP (agents lock it, new logins are
// refused with login.ErrDeactivatedInIdP), every device binding is revoked
// (which ends the sessions opened with them on every node), and the change
// is audited once with why, the IdP's answer. It returns how many bindings
// were revoked. Deactivating someone already deactivated by the IdP changes
// nothing and is not audited again.
func (s *Service) DeactivateFromIdP(ctx context.Context, a Actor, id, why string) (int, error) {
	u, err := user(s.state(ctx), id)
	if err != nil {
		return 0, err
	}
	if u.Status == raftstore.UserDeleted {
		return 0, nil
	}
	already := u.Status == raftstore.UserDisabled && u.DisabledByIdP
	if !already {
		if _, err := s.apply(ctx, &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserDisabled, ByIdP: true, Now: s.now().UTC()}); err != nil {
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
	fields := map[string]string{"user": u.Login, "user_id": u.ID, "reason": why, "bindings_revoked": strconv.Itoa(n)}
	if aerr := s.audit(ctx, a, EventIdPDeactivate, fields); aerr != nil {
		return n, errors.Join(errors.New(errNotAudited), aerr)
	}
	s.logger.Info("identity provider deactivated a person", "user", u.Login, "user_id", u.ID, "reason", why, "bindings_revoked", n)
	return n, nil
}

// ReactivateFromIdP restores a person the identity provider had
// deactivated, with the same unix name and uid. A person an administrator
// disabled stays disabled: the IdP undoes only its own deactivation (the
// returned bool says whether anything changed).
func (s *Service) ReactivateFromIdP(ctx context.Context, a Actor, id string) (bool, error) {
	u, err := user(s.state(ctx), id)
	if err != nil {
		return false, err
	}
	if u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
		return false, nil
	}
	if _, err := s.apply(ctx, &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserActive, Now: s.now().UTC()}); err != nil {
		return false, err
	}
	if aerr := s.audit(ctx, a, EventIdPReactivate, map[string]string{"user": u.Login, "user_id": u.ID}); aerr != nil {
		return true, errors.Join(errors.New(errNotAudited), aerr)
	}
	return true, nil
}
