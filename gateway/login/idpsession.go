package login

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The sign-in half of re-validation: a sign-in's refresh token is kept
// sealed under the key-encryption key (raftstore.IdPSession), and a bound key
// is honoured only while the IdP has confirmed its person recently enough
// (the unverified bound). The Revalidator (revalidate.go) keeps confirming.

// DefaultUnverifiedMax is how long a binding stays usable while its
// person cannot be re-validated (oidc.unverified_binding_max).
const DefaultUnverifiedMax = time.Hour

// Sealer seals and opens secrets under the key-encryption key (ca.KEK).
type Sealer interface {
	Seal(plaintext []byte, purpose string) ([]byte, error)
	Open(sealed []byte, purpose string) ([]byte, error)
}

// SetRefreshTokens makes sign-ins keep their refresh tokens sealed with
// sealer, and bounds how long a binding stays usable after its person was
// last confirmed by the IdP (unverifiedMax; 0 means DefaultUnverifiedMax).
// Without it no refresh token is kept and binding_ttl is the only bound.
func (s *Service) SetRefreshTokens(sealer Sealer, unverifiedMax time.Duration) {
	if unverifiedMax <= 0 {
		unverifiedMax = DefaultUnverifiedMax
	}
	s.sealer, s.unverifiedMax = sealer, unverifiedMax
}

// keepIdPSession stores a sign-in's refresh token, sealed, as confirmed
// now. A sign-in that asked for a refresh token and got none (consent for
// offline access declined, an IdP policy), or whose token could not be
// sealed, gets a record without a token: the unverified bound then runs
// from this sign-in, and only another sign-in extends it, rather than the
// key working for the whole binding_ttl unchecked. A failure to store is
// logged, never the token: the sign-in stands.
func (s *Service) keepIdPSession(ctx context.Context, user *raftstore.User, id *Identity) {
	if s.sealer == nil || (id.RefreshToken == "" && !id.RefreshAsked) {
		return
	}
	var sealed []byte
	if id.RefreshToken != "" {
		var err error
		if sealed, err = s.sealer.Seal([]byte(id.RefreshToken.Reveal()), raftstore.RefreshPurpose(user.ID)); err != nil {
			s.logger.Error("could not seal the sign-in's refresh token; the unverified bound applies from this sign-in", "user", user.Login, "err", err)
		}
	} else {
		s.logger.Info("the identity provider gave no refresh token; the unverified bound applies from this sign-in", "user", user.Login)
	}
	if _, err := s.store.Apply(ctx, &raftstore.IdPSessionPut{UserID: user.ID, RefreshSealed: sealed, ConfirmedAt: s.now().UTC()}); err != nil {
		s.logger.Warn("could not record the sign-in's IdP session; re-validation will not cover this person until their next sign-in", "user", user.Login, "err", err)
	}
}

// unverified reports whether b's person has a refresh token on record that
// the IdP has not confirmed for longer than the unverified bound: such a
// key needs a browser sign-in again.
func (s *Service) unverified(st *raftstore.State, b *raftstore.Binding) (bool, error) {
	if s.unverifiedMax <= 0 {
		return false, nil
	}
	_, rec, err := st.IdPSessionByUser(nil, b.UserID)
	if err != nil || rec == nil {
		return false, err
	}
	if s.now().Sub(rec.ConfirmedAt) <= s.unverifiedMax {
		return false, nil
	}
	s.logger.Info("bound key needs a browser sign-in: the identity provider has not confirmed its person within the unverified bound",
		"user_id", b.UserID, "key", b.Fingerprint, "confirmed_at", rec.ConfirmedAt, "last_failure", rec.LastFailure, "bound", s.unverifiedMax)
	return true, nil
}

// Reconfirm applies what a refreshed ID token says of the existing, active
// person userID, whose subject it must name: login, email and groups,
// through the same upsert as a sign-in (a group gone from the token leaves
// the person's groups, which ends the grants it gave). It never creates
// anyone, and never changes anyone's status (only UserSetStatus does): a
// person deactivated meanwhile stays so, and is refused. An unchanged
// person is not written.
func (s *Service) Reconfirm(ctx context.Context, userID string, id *Identity) (*raftstore.User, error) {
	_, existing, err := s.store.State().UserByID(nil, userID)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return nil, fmt.Errorf("user %s: %w", userID, raftstore.ErrNotFound)
	}
	if sub := cmp.Or(existing.Subject, existing.ID); sub != id.Subject {
		return nil, fmt.Errorf("user %s: the refreshed identity names subject %q, not %q", userID, id.Subject, sub)
	}
	if existing.Status != raftstore.UserActive {
		return nil, inactive(existing)
	}
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	have := slices.Clone(existing.GroupsFromToken())
	slices.Sort(have)
	if existing.Login == id.Login && existing.Email == id.Email && slices.Equal(slices.Compact(groups), slices.Compact(have)) {
		return existing, nil
	}
	u := raftstore.User{ID: existing.ID, Subject: id.Subject, Login: id.Login, Email: id.Email, Groups: id.Groups,
		Sources: []string{raftstore.SourceSignIn}, UnixName: existing.UnixName, UID: existing.UID}
	u.EmailVerified = id.EmailVerified // the refreshed token's word on the address, as at sign-in
	return s.upsert(ctx, u)
}

// HoldIdPSession records that holder (a front door) has an open connection
// of userID signed in without a key, until until (zero: released): it
// keeps their IdP session, and so their re-validation, while no binding
// does. It does nothing for a person without an IdP session.
func (s *Service) HoldIdPSession(ctx context.Context, userID, holder string, until time.Time) error {
	if s.sealer == nil {
		return nil
	}
	_, err := s.store.Apply(ctx, &raftstore.IdPSessionHold{UserID: userID, Holder: holder, Until: until})
	return err
}
