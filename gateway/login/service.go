package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// DefaultBindingTTL is how long a key stays bound after a browser sign-in.
const DefaultBindingTTL = 8 * time.Hour

// ErrUserDisabled: the user exists but is disabled or deleted.
var ErrUserDisabled = errors.New("your account is disabled; ask an administrator")

// ErrDeactivatedInIdP: the user was deactivated by the identity provider
// (SCIM, or a refused re-validation). It is also an ErrUserDisabled.
var ErrDeactivatedInIdP error = idpDeactivated{}

type idpDeactivated struct{}

func (idpDeactivated) Error() string        { return "your account was deactivated in the identity provider" }
func (idpDeactivated) Is(target error) bool { return target == ErrUserDisabled }

// inactive is the refusal for a user who is not active.
func inactive(u *raftstore.User) error {
	if u.DisabledByIdP {
		return ErrDeactivatedInIdP
	}
	return ErrUserDisabled
}

// Store is what sign-in needs of the replicated store.
type Store interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	CheckFresh() error
	// WaitApplied waits until the local replica holds a write made through
	// the leader: the session that follows a sign-in reads the new user
	// from this node's replica.
	WaitApplied(ctx context.Context, index uint64) error
}

// Auditor records an audit event (the node's audit log).
type Auditor interface {
	Record(event, user string, fields map[string]string)
}

// Service turns identities into users and keys into bindings.
type Service struct {
	store      Store
	logger     *slog.Logger
	audit      Auditor // nil: nothing audited
	bindingTTL time.Duration
	now        func() time.Time
	// sealer seals refresh tokens (nil: none are kept); unverifiedMax
	// bounds a binding whose person the IdP has not confirmed for that
	// long (0: no bound). See idpsession.go.
	sealer        Sealer
	unverifiedMax time.Duration
	// externalIDNotSubject: the IdP's SCIM externalId is not the ID
	// token's sub (Entra ID), so a record SCIM made with an externalId
	// may be adopted by a verified e-mail (SetExternalIDIsSubject).
	externalIDNotSubject bool
}

// SetExternalIDIsSubject says whether the IdP's SCIM externalId is the ID
// token's sub (true, the default: Okta). Then a record SCIM made with an
// externalId belongs to that subject alone and is never adopted by
// e-mail; false (Entra ID, whose sub is pairwise) lets a verified e-mail
// adopt it.
func (s *Service) SetExternalIDIsSubject(is bool) { s.externalIDNotSubject = !is }

// SetAuditor gives the service the audit log it records collisions in.
func (s *Service) SetAuditor(a Auditor) { s.audit = a }

// NewService returns a Service; ttl 0 means DefaultBindingTTL.
func NewService(store Store, ttl time.Duration, logger *slog.Logger) *Service {
	if ttl <= 0 {
		ttl = DefaultBindingTTL
	}
	return &Service{store: store, logger: logger, bindingTTL: ttl, now: time.Now}
}

// SetClock replaces the service's clock (tests move time forward to expire
// bindings).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// BindingTTL is how long new bindings last.
func (s *Service) BindingTTL() time.Duration { return s.bindingTTL }

// BoundUser returns the active user a key is bound to, with the binding, or
// nil when the key is not bound (or its binding expired, or the IdP has not
// confirmed its person for longer than the unverified bound). A key bound to a
// disabled or deleted user is refused with ErrUserDisabled. The local replica
// must be fresh: a partitioned follower does not let a revoked key in.
func (s *Service) BoundUser(key ssh.PublicKey) (*raftstore.User, *raftstore.Binding, error) {
	if err := s.store.CheckFresh(); err != nil {
		return nil, nil, err
	}
	st := s.store.State()
	_, b, err := st.LiveBinding(nil, ssh.FingerprintSHA256(key), s.now())
	if err != nil || b == nil {
		return nil, nil, err
	}
	if stale, err := s.unverified(st, b); err != nil || stale {
		return nil, nil, err
	}
	u, err := s.ActiveUser(b.UserID)
	if err != nil {
		return nil, nil, err
	}
	return u, b, nil
}

// ActiveUser returns the user if it exists and is active.
func (s *Service) ActiveUser(id string) (*raftstore.User, error) {
	_, u, err := s.store.State().UserByID(nil, id)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, fmt.Errorf("user %s: %w", id, raftstore.ErrNotFound)
	}
	if u.Status != raftstore.UserActive {
		return nil, inactive(u)
	}
	return u, nil
}

// Provision creates the user on first sign-in, or refreshes login, email and
// groups on later ones. The unix name is derived once and never changes.
//
// A person is their IdP subject, never their login. A new subject whose
// login another subject already holds (a recycled IdP user name, or a
// preferred_username chosen to match someone's) is a different person: it
// gets a unix name of its own (the next free suffix), and the collision is
// audited as user.login_collision. A unix name a project shares (e.g.
// deploy) is never given to a person; they get a suffixed name too.
func (s *Service) Provision(ctx context.Context, id *Identity) (*raftstore.User, error) {
	st := s.store.State()
	existing, adopted, err := s.findPerson(st, id)
	if err != nil {
		return nil, err
	}
	u := raftstore.User{ID: id.Subject, Subject: id.Subject, Login: id.Login, Email: id.Email, EmailVerified: id.EmailVerified,
		Groups: id.Groups, Status: raftstore.UserActive, Sources: []string{raftstore.SourceSignIn}}
	if existing != nil {
		if existing.Status != raftstore.UserActive {
			return nil, inactive(existing)
		}
		u.ID, u.UnixName, u.UID = existing.ID, existing.UnixName, existing.UID
		user, err := s.upsert(ctx, u)
		if err == nil {
			s.keepIdPSession(ctx, user, id)
		}
		if err == nil && adopted != "" {
			s.logger.Info("sign-in adopted the record SCIM made", "user", user.Login, "user_id", user.ID, "subject", id.Subject, "matched", adopted)
			if s.audit != nil {
				s.audit.Record(EventUserAdopt, user.Login, map[string]string{"user_id": user.ID, "subject": id.Subject, "matched": adopted})
			}
		}
		return user, err
	}
	base, err := api.BaseUnixName(id.Login)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	_, namesakes, err := st.UsersByLogin(nil, id.Login)
	if err != nil {
		return nil, err
	}
	// Another node may hand out the same name at the same moment: the FSM
	// refuses the second with a conflict, and we look again.
	for attempt := 0; attempt < 3; attempt++ {
		u.UnixName, err = api.ResolveCollision(base, func(name string) (bool, error) {
			st := s.store.State()
			_, other, err := st.UserByUnixName(nil, name)
			if err != nil || (other != nil && other.ID != id.Subject) {
				return true, err
			}
			project, err := st.SharedLoginProject(name)
			return project != "", err
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
		}
		user, err := s.upsert(ctx, u)
		if err == nil && len(namesakes) > 0 {
			s.loginCollision(user, namesakes)
		}
		if err == nil {
			s.keepIdPSession(ctx, user, id)
		}
		if !errors.Is(err, raftstore.ErrConflict) {
			return user, err
		}
		s.logger.Warn("unix name taken concurrently; retrying", "user", id.Login, "unix_name", u.UnixName, "err", err)
	}
	return nil, fmt.Errorf("%w: could not allocate a unix name for %q", ErrBadIdentity, id.Login)
}

// findPerson returns the record that is the person signing in: theirs by
// IdP subject; else one SCIM made before their first sign-in and no sign-in
// has adopted yet, matched by externalId (Okta's is its user id, the
// token's sub) and then by e-mail (one such record only). adopted says by
// which when it is SCIM's record ("" for their own).
//
// An e-mail matches only when the ID token says the IdP verified it
// (email_verified), and never a record whose externalId names another
// subject (unless the IdP's externalId is not the sub:
// SetExternalIDIsSubject): an address anyone can put in their own IdP
// profile must not hand them someone else's account.
func (s *Service) findPerson(st *raftstore.State, id *Identity) (*raftstore.User, string, error) {
	_, u, err := st.UserBySubject(nil, id.Subject)
	if err != nil || u != nil {
		return u, "", err
	}
	_, u, err = st.UserByExternalID(nil, id.Subject)
	if err != nil {
		return nil, "", err
	}
	if u != nil && u.PendingSCIM() {
		return u, "externalId", nil
	}
	if id.Email == "" || !id.EmailVerified {
		return nil, "", nil
	}
	_, same, err := st.UsersByEmail(nil, id.Email)
	if err != nil {
		return nil, "", err
	}
	var pending []*raftstore.User
	for _, u := range same {
		if u.PendingSCIM() && u.Status != raftstore.UserDeleted && u.EmailVerified &&
			(u.ExternalID == "" || s.externalIDNotSubject) {
			pending = append(pending, u)
		}
	}
	if len(pending) != 1 {
		if len(pending) > 1 {
			s.logger.Warn("several records SCIM made share the e-mail of a first sign-in; none adopted", "user", id.Login, "subject", id.Subject)
		}
		return nil, "", nil
	}
	return pending[0], "email", nil
}

// loginCollision reports a new person whose login others already hold.
func (s *Service) loginCollision(user *raftstore.User, others []*raftstore.User) {
	ids := make([]string, len(others))
	for i, o := range others {
		ids[i] = o.ID
	}
	s.logger.Warn("new subject signed in with a login other subjects hold; given a unix name of its own",
		"user", user.Login, "subject", user.ID, "unix_name", user.UnixName, "other_subjects", ids)
	if s.audit != nil {
		s.audit.Record(EventLoginNameCollide, user.Login, map[string]string{
			"subject": user.ID, "unix_name": user.UnixName, "other_subjects": strings.Join(ids, ","),
		})
	}
}

// upsert writes u as a sign-in sees them. The status is not the upsert's to
// change (raftstore.UserUpsert keeps it): a person deactivated since they
// were read comes back as they are, and is refused.
func (s *Service) upsert(ctx context.Context, u raftstore.User) (*raftstore.User, error) {
	res, err := s.store.Apply(ctx, &raftstore.UserUpsert{User: u, EnsureGroups: true, Now: s.now().UTC()})
	if err != nil {
		return nil, err
	}
	if err := s.store.WaitApplied(ctx, res.Index); err != nil {
		return nil, err
	}
	var stored raftstore.User
	if err := res.Decode(&stored); err != nil {
		return nil, err
	}
	if stored.Status != raftstore.UserActive {
		return nil, inactive(&stored)
	}
	return &stored, nil
}

// BindInfo describes the client a binding is made for.
type BindInfo struct {
	ClientVersion string
	SourceAddr    string
}

// Bind binds key to user for the binding TTL. A binding from a host none of
// the user's earlier bindings came from is audited as binding.flag (reason new_address).
func (s *Service) Bind(ctx context.Context, user *raftstore.User, key ssh.PublicKey, info BindInfo) (*raftstore.Binding, error) {
	now := s.now().UTC()
	known, err := s.bindingHosts(user.ID)
	if err != nil {
		return nil, err
	}
	b := raftstore.Binding{
		Fingerprint: ssh.FingerprintSHA256(key), UserID: user.ID, PublicKey: string(ssh.MarshalAuthorizedKey(key)),
		ClientVersion: info.ClientVersion, SourceAddr: info.SourceAddr, CreatedAt: now, ExpiresAt: now.Add(s.bindingTTL),
	}
	b.PublicKey = b.PublicKey[:len(b.PublicKey)-1] // MarshalAuthorizedKey ends in a newline
	res, err := s.store.Apply(ctx, &raftstore.BindingUpsert{Binding: b, Now: now})
	if err != nil {
		return nil, err
	}
	if err := s.store.WaitApplied(ctx, res.Index); err != nil {
		return nil, err
	}
	var stored raftstore.Binding
	if err := res.Decode(&stored); err != nil {
		return nil, err
	}
	s.noteNewAddress(user, &stored, known)
	return &stored, nil
}
