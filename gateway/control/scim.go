package control

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// What SCIM changes: people and the groups the IdP pushes, and the
// provisioning tokens SCIM authenticates with. A person is one record
// whichever path met them first: SCIM's create matches an existing record
// by IdP subject (Okta's externalId is its user id, the ID token's sub),
// then externalId, then e-mail; a record SCIM made before the person's
// first sign-in has the id "scim-" and 32 hex digits until a sign-in adopts
// it (login.Service.Provision) and keeps that id after.

// SCIM's audit event types, one per change. A SCIM change is the same
// event as the change made any other way (a deletion is user.delete, a SCIM
// token is a service token); its actor, "scim:<token name>", says SCIM made
// it.
const (
	EventUserCreate   = "user.create"
	EventUserUpdate   = "user.update"
	EventGroupReplace = "group.replace"
	EventGroupUpdate  = "group.update"
	EventGroupDelete  = "group.delete"
	scimUserIDPrefix  = "scim-"
	// SCIMIDReserve is how many uids and gids at the end of the cluster's
	// ranges SCIM never takes: they stay for sign-ins, whose new people and
	// ID-token groups need them.
	SCIMIDReserve           = 500
	maxSCIMAttr             = 256
	errSCIMAdminGroupRefuse = "the administrators' group (oidc.admin_group) counts only from the ID token: SCIM cannot change its members"
)

// SCIMUser is a person as SCIM pushes them.
type SCIMUser struct {
	UserName   string
	ExternalID string
	Email      string
	// Active is nil when the request does not say.
	Active *bool
}

func (in *SCIMUser) validate() error {
	for _, f := range []struct{ name, v string }{{"userName", in.UserName}, {"externalId", in.ExternalID}, {"email", in.Email}} {
		if len(f.v) > maxSCIMAttr {
			return invalid("%s is longer than %d bytes", f.name, maxSCIMAttr)
		}
		if !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unprintable) {
			return invalid("%s holds control or format characters", f.name)
		}
	}
	if in.UserName == "" {
		return invalid("userName is required")
	}
	return nil
}

// unprintable reports whether r is a control character (C0, DEL, C1) or
// a Unicode format character (Cf: bidi overrides, zero-width ones), which
// would make a name in the audit log or a listing read as another.
func unprintable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// SCIMVisible reports whether SCIM sees the person: a record SCIM created
// or linked, and has not deleted since. SCIM never sees, changes or
// deactivates anyone else.
func SCIMVisible(u *raftstore.User) bool {
	return slices.Contains(u.Sources, raftstore.SourceSCIM) && !u.SCIMDeleted && u.Status != raftstore.UserDeleted
}

// scimUser returns the person SCIM knows as id, or a 404.
func scimUser(st *raftstore.State, id string) (*raftstore.User, error) {
	_, u, err := st.UserByID(nil, id)
	if err != nil {
		return nil, err
	}
	if u == nil || !SCIMVisible(u) {
		return nil, notFound("user %q: not found", id)
	}
	return u, nil
}

// SCIMCreateUser creates the person SCIM pushes, or links the record that
// already is them (matched by subject, then externalId, then e-mail): a
// record sign-in made, or one SCIM deleted before. It refuses (409) a
// person SCIM already sees and a record linked to another externalId.
func (s *Service) SCIMCreateUser(ctx context.Context, a Actor, in SCIMUser) (*raftstore.User, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	st := s.state(ctx)
	match, how, err := scimMatch(st, &in)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var stored raftstore.User
	if match == nil {
		if err := checkReserve(st, "uid"); err != nil {
			return nil, err
		}
		id, err := s.newID(scimUserIDPrefix, 16)
		if err != nil {
			return nil, err
		}
		u := raftstore.User{ID: id, Login: in.UserName, Email: in.Email, ExternalID: in.ExternalID}
		if u.UnixName, err = unixNameFor(st, in.UserName, id); err != nil {
			return nil, err
		}
		if err := s.applyDecode(ctx, &raftstore.UserSCIMPut{User: u, Now: now}, &stored); err != nil {
			return nil, err
		}
		how = "new"
	} else {
		if SCIMVisible(match) {
			return nil, conflict("user %s already exists (matched by %s)", match.Login, how)
		}
		u := raftstore.User{ID: match.ID, Login: in.UserName, Email: in.Email, ExternalID: in.ExternalID}
		if err := s.applyDecode(ctx, &raftstore.UserSCIMPut{User: u, Now: now}, &stored); err != nil {
			return nil, err
		}
	}
	fields := map[string]string{"user": stored.Login, "user_id": stored.ID, "external_id": stored.ExternalID, "matched": how, "unix_name": stored.UnixName}
	if aerr := s.audit(ctx, a, EventUserCreate, fields); aerr != nil {
		return &stored, aerr
	}
	return s.scimActive(ctx, a, &stored, in.Active)
}

// scimMatch finds the record that is the person in: by subject (their
// externalId as an IdP subject), then externalId, then e-mail. how says by
// which. An e-mail matches only a record whose address the IdP vouched for
// (User.EmailVerified: a sign-in whose ID token said email_verified, or
// SCIM's own push): an address someone typed into their own IdP profile
// must not give them the account SCIM provisions.
func scimMatch(st *raftstore.State, in *SCIMUser) (*raftstore.User, string, error) {
	usable := func(u *raftstore.User) bool { return u != nil && u.Status != raftstore.UserDeleted }
	if in.ExternalID != "" {
		if _, u, err := st.UserBySubject(nil, in.ExternalID); err != nil || usable(u) {
			return u, "subject", checkLink(u, in, err)
		}
		if _, u, err := st.UserByExternalID(nil, in.ExternalID); err != nil || usable(u) {
			return u, "externalId", err
		}
	}
	if in.Email == "" {
		return nil, "", nil
	}
	_, same, err := st.UsersByEmail(nil, in.Email)
	if err != nil {
		return nil, "", err
	}
	same = slices.DeleteFunc(same, func(u *raftstore.User) bool { return !usable(u) || !u.EmailVerified })
	switch {
	case len(same) == 0:
		return nil, "", nil
	case len(same) > 1:
		return nil, "", conflict("%d people have the e-mail address %s: link this one by externalId", len(same), in.Email)
	}
	return same[0], "email", checkLink(same[0], in, nil)
}

// checkLink refuses to link a record that SCIM knows by another externalId.
func checkLink(u *raftstore.User, in *SCIMUser, err error) error {
	if err != nil || u == nil {
		return err
	}
	if u.ExternalID != "" && u.ExternalID != in.ExternalID {
		return conflict("user %s is linked to another identity of the provider", u.Login)
	}
	return nil
}

// checkReserve refuses a SCIM create that would take a uid or gid (what)
// from the last SCIMIDReserve of the cluster's range.
func checkReserve(st *raftstore.State, what string) error {
	_, m, err := st.Meta(nil)
	if err != nil {
		return err
	}
	next, end := m.UIDNext, m.UIDEnd
	if what == "gid" {
		next, end = m.GIDNext, m.GIDEnd
	}
	if next == 0 || next > end || end-next < SCIMIDReserve {
		return &fault.Error{Status: http.StatusForbidden, Code: "forbidden",
			Msg: fmt.Sprintf("the cluster's %s range is nearly used up: its last %d are kept for sign-ins, SCIM cannot create more", what, SCIMIDReserve)}
	}
	return nil
}

// unixNameFor derives the unix name of a new person from their userName,
// by the rule sign-in applies (api.BaseUnixName, a suffix on collision,
// never a project's shared login).
func unixNameFor(st *raftstore.State, userName, id string) (string, error) {
	base, err := api.BaseUnixName(userName)
	if err != nil {
		return "", invalid("userName %q cannot become a unix account name", userName)
	}
	name, err := api.ResolveCollision(base, func(name string) (bool, error) {
		_, other, err := st.UserByUnixName(nil, name)
		if err != nil || (other != nil && other.ID != id) {
			return true, err
		}
		p, err := st.SharedLoginProject(name)
		return p != "", err
	})
	if err != nil {
		return "", invalid("no unix account name is free for userName %q", userName)
	}
	return name, nil
}

// SCIMUpdateUser applies a SCIM PUT or PATCH (in is the person as they are
// after it): userName, e-mail, externalId (set once, never moved), and
// active, which deactivates (DeactivateFromIdP) or re-activates
// (ReactivateFromIdP) them. The unix name and uid never change.
func (s *Service) SCIMUpdateUser(ctx context.Context, a Actor, id string, in SCIMUser) (*raftstore.User, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	old, err := scimUser(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	if in.ExternalID != "" && old.ExternalID != "" && in.ExternalID != old.ExternalID {
		return nil, &fault.Error{Status: http.StatusBadRequest, Code: "mutability", Msg: "externalId cannot change"}
	}
	var stored raftstore.User
	u := raftstore.User{ID: old.ID, Login: in.UserName, Email: in.Email, ExternalID: in.ExternalID}
	if err := s.applyDecode(ctx, &raftstore.UserSCIMPut{User: u, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	if stored.Login != old.Login || stored.Email != old.Email || stored.ExternalID != old.ExternalID {
		fields := map[string]string{"user": stored.Login, "user_id": stored.ID}
		if stored.Login != old.Login {
			fields["renamed_from"] = old.Login
		}
		if aerr := s.audit(ctx, a, EventUserUpdate, fields); aerr != nil {
			return &stored, aerr
		}
	}
	return s.scimActive(ctx, a, &stored, in.Active)
}

// scimActive applies SCIM's active to u: false deactivates them as the
// IdP's, true undoes only the IdP's own deactivation.
func (s *Service) scimActive(ctx context.Context, a Actor, u *raftstore.User, active *bool) (*raftstore.User, error) {
	switch {
	case active == nil:
		return u, nil
	case !*active:
		if _, err := s.DeactivateFromIdP(ctx, a, u.ID, raftstore.ViaSCIM, "scim active=false"); err != nil {
			return u, err
		}
	default:
		if _, err := s.ReactivateFromIdP(ctx, a, u.ID); err != nil {
			return u, err
		}
	}
	return user(s.store.State(), u.ID)
}

// SCIMDeleteUser is a SCIM DELETE: the person is deactivated as the IdP's
// (their record, unix name and uid are kept, so that creating them again
// restores the same account) and leaves SCIM's view.
func (s *Service) SCIMDeleteUser(ctx context.Context, a Actor, id string) error {
	u, err := scimUser(s.state(ctx), id)
	if err != nil {
		return err
	}
	if _, err := s.DeactivateFromIdP(ctx, a, u.ID, raftstore.ViaSCIM, "scim delete"); err != nil {
		return err
	}
	if _, err := s.apply(ctx, &raftstore.UserSCIMPut{User: raftstore.User{ID: u.ID, Login: u.Login, Email: u.Email}, Deleted: true, Now: s.now().UTC()}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventUserDelete, map[string]string{"user": u.Login, "user_id": u.ID})
}

// SCIMGroup is a group as SCIM names it and its members (user ids).
type SCIMGroup struct {
	DisplayName string
	ExternalID  string
	Members     []string
}

// checkGroupName applies the rule ID-token groups follow
// (api.SafeGroupName), refuses format characters too (a name SCIM makes
// must read as what it is), and keeps SCIM out of the administrators'
// group.
func (s *Service) checkGroupName(name string) error {
	if !api.SafeGroupName(name) || strings.ContainsFunc(name, unprintable) {
		return invalid("displayName %q cannot be a group name", name)
	}
	if s.adminGroup != "" && name == s.adminGroup {
		return &fault.Error{Status: http.StatusForbidden, Code: "forbidden", Msg: errSCIMAdminGroupRefuse}
	}
	return nil
}

// checkMembers refuses members SCIM does not see.
func checkMembers(st *raftstore.State, ids []string) error {
	for _, id := range ids {
		if _, err := scimUser(st, id); err != nil {
			return invalid("member %q is not a user SCIM provisioned", id)
		}
	}
	return nil
}

// SCIMPutGroup creates (create true) or replaces a group SCIM manages: its
// SCIM members become exactly in.Members. Its name is what grants refer
// to, so a replace cannot rename it. Creating a group that exists (from ID
// tokens, or deleted by SCIM before) links it.
func (s *Service) SCIMPutGroup(ctx context.Context, a Actor, in SCIMGroup, create bool) (*raftstore.Group, error) {
	if err := s.checkGroupName(in.DisplayName); err != nil {
		return nil, err
	}
	st := s.state(ctx)
	_, g, err := st.GroupByName(nil, in.DisplayName)
	if err != nil {
		return nil, err
	}
	switch {
	case create && g != nil && g.SCIM:
		return nil, conflict("group %s already exists", in.DisplayName)
	case !create && (g == nil || !g.SCIM):
		return nil, notFound("group %q: not found", in.DisplayName)
	}
	if err := checkMembers(st, in.Members); err != nil {
		return nil, err
	}
	if g == nil {
		if err := checkReserve(st, "gid"); err != nil {
			return nil, err
		}
	}
	var stored raftstore.Group
	cmd := &raftstore.SCIMGroupPut{Group: in.DisplayName, ExternalID: in.ExternalID, Linked: true, Replace: true, Members: in.Members, Now: s.now().UTC()}
	if err := s.applyDecode(ctx, cmd, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventGroupReplace, map[string]string{"group": stored.Name, "members": strings.Join(in.Members, ",")})
}

// SCIMPatchGroupMembers adds and removes SCIM members of a group SCIM
// manages.
func (s *Service) SCIMPatchGroupMembers(ctx context.Context, a Actor, group string, add, remove []string) (*raftstore.Group, error) {
	st := s.state(ctx)
	_, g, err := st.GroupByName(nil, group)
	if err != nil {
		return nil, err
	}
	if g == nil || !g.SCIM {
		return nil, notFound("group %q: not found", group)
	}
	if err := s.checkGroupName(group); err != nil {
		return nil, err
	}
	if err := checkMembers(st, add); err != nil {
		return nil, err
	}
	if len(add) == 0 && len(remove) == 0 {
		return g, nil
	}
	var stored raftstore.Group
	if err := s.applyDecode(ctx, &raftstore.SCIMGroupPut{Group: group, Linked: true, Add: add, Remove: remove, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventGroupUpdate, map[string]string{"group": group, "added": strings.Join(add, ","), "removed": strings.Join(remove, ",")})
}

// SCIMDeleteGroup ends SCIM's management of a group: its SCIM members lose
// it (their grants through it go, unless their ID token names it too); the
// group itself, its gid and its grants stay.
func (s *Service) SCIMDeleteGroup(ctx context.Context, a Actor, group string) error {
	_, g, err := s.state(ctx).GroupByName(nil, group)
	if err != nil {
		return err
	}
	if g == nil || !g.SCIM {
		return notFound("group %q: not found", group)
	}
	if _, err := s.apply(ctx, &raftstore.SCIMGroupPut{Group: group, Linked: false, Now: s.now().UTC()}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventGroupDelete, map[string]string{"group": group})
}

// CreateProvisioningToken creates a token of scope provisioning (SCIM
// alone) named name, valid for ttl (0: until revoked). The secret is
// returned once; the cluster keeps its hash.
func (s *Service) CreateProvisioningToken(ctx context.Context, a Actor, name string, ttl time.Duration) (string, *raftstore.ServiceToken, error) {
	return s.createServiceToken(ctx, a, name, raftstore.ServiceRoleProvisioning, ttl, EventServiceTokenCreate)
}

// RevokeProvisioningToken revokes a provisioning token by its id; an admin
// token is not one (404).
func (s *Service) RevokeProvisioningToken(ctx context.Context, a Actor, id string) (*raftstore.ServiceToken, error) {
	_, toks, err := s.state(ctx).ServiceTokens(nil)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(toks, func(t *raftstore.ServiceToken) bool {
		return t.ID == id && t.Role == raftstore.ServiceRoleProvisioning
	})
	if i < 0 {
		return nil, notFound("provisioning token %q: not found", id)
	}
	if _, err := s.apply(ctx, &raftstore.ServiceTokenDelete{ID: id}); err != nil {
		return nil, err
	}
	return toks[i], s.audit(ctx, a, EventServiceTokenRevoke, map[string]string{"service_token": id, "name": toks[i].Name, "scope": toks[i].Role})
}

// newID returns prefix and n random bytes in hex.
func (s *Service) newID(prefix string, n int) (string, error) {
	raw := make([]byte, n)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + hex.EncodeToString(raw), nil
}
