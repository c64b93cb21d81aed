package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The console's roles, decided at sign-in and again on every request, from
// the ID token's groups at sign-in and the person's Rampart account (found
// by the ID token's subject, as SSH sign-in made it) as it is in the
// replicated state at that moment:
//
//   - admin: the ID token names oidc.admin_group and, when the person has
//     an account, so do its token groups (those of their last SSH sign-in
//     or re-validation, as the admin shell checks). Everything an auditor
//     sees, live sessions, and every project's access requests.
//   - auditor: an admin, or the ID token names console.auditor_group and,
//     when the person has an account, so do its groups (token or SCIM).
//     Sessions, recordings, search and share links.
//   - approver: the person has an active Rampart account and is a member
//     of some project's approver groups, by the ID token's groups and the
//     groups SCIM gives the account. The requests page only, unless they
//     are an auditor too.
//
// A person whose account exists and is not active (disabled, deleted, or
// deactivated by the IdP) is refused at sign-in, and their console session
// ends at their next request. A person with no account (an auditor who
// never signs in with ssh) is judged by the ID token alone: Rampart has
// nothing to withdraw, so their session lasts until it idles out or
// reaches its maximum. Anyone else is refused.
//
// The roles decide which pages open; they never decide an access request:
// each approval or denial goes to gateway/control, which checks the account
// and its groups as they are at that moment (control.ConsoleDecider).

// errInactive: the person's Rampart account exists and is not active.
var errInactive = errors.New("the Rampart account is not active")

// roles are what a person may open.
type roles struct {
	Admin, Auditor, Approver bool
}

// standing is a person's roles as of now, and how they were found.
type standing struct {
	roles
	// UserID is their Rampart account's id ("" without one).
	UserID string
	// Unconfirmed: the ID token names the auditor or admin group, but the
	// account's groups do not (that role is then not given).
	Unconfirmed bool
}

// rolesAt decides the roles, now, of the person with IdP subject sub whose
// ID token at sign-in named groups. It returns errInactive (with UserID
// set) when their account exists and is not active.
func (c *Console) rolesAt(sub string, groups []string) (standing, error) {
	tokenAdmin := c.cfg.AdminGroup != "" && slices.Contains(groups, c.cfg.AdminGroup)
	tokenAuditor := slices.Contains(groups, c.cfg.AuditorGroup)
	st := c.deps.State.State()
	var u *raftstore.User
	if sub != "" {
		var err error
		if _, u, err = st.UserBySubject(nil, sub); err != nil {
			return standing{}, fmt.Errorf("read the account of subject %s: %w", sub, err)
		}
	}
	if u == nil {
		return standing{roles: roles{Admin: tokenAdmin, Auditor: tokenAdmin || tokenAuditor}}, nil
	}
	rs := standing{UserID: u.ID}
	if u.Status != raftstore.UserActive {
		return rs, errInactive
	}
	rs.Admin = tokenAdmin && slices.Contains(u.GroupsFromToken(), c.cfg.AdminGroup)
	rs.Auditor = rs.Admin || (tokenAuditor && slices.Contains(u.Groups, c.cfg.AuditorGroup))
	rs.Unconfirmed = (tokenAdmin && !rs.Admin) || (tokenAuditor && !rs.Auditor)
	if c.deps.Requests == nil {
		return rs, nil
	}
	// The token's groups are the IdP's word at sign-in; the account's token
	// groups may be older. SCIM's groups come only from the account.
	projects, err := control.ApproverProjects(st, unionGroups(groups, u.SCIMGroups))
	if err != nil {
		c.log.Warn("console: projects cannot be read; approver role not given", "user", u.Login, "err", err)
		return rs, nil
	}
	rs.Approver = len(projects) > 0
	return rs, nil
}

// creatorActive reports whether a share link made by the person of IdP
// subject sub still works: unless their Rampart account exists and is not
// active. A link that names no creator (made before links did) is not
// checked; it lives 30 days at most.
func creatorActive(st *raftstore.State, sub string) bool {
	if sub == "" {
		return true
	}
	_, u, err := st.UserBySubject(nil, sub)
	return err == nil && (u == nil || u.Status == raftstore.UserActive)
}

// session returns the request's console session with its roles decided
// now, or nil. A session whose person's account is no longer active, or
// who has no role left, is ended; refused is then what they are told, with
// status.
func (c *Console) session(r *http.Request) (s *consoleSession, status int, refused string) {
	s, ok := c.auth.current(r)
	if !ok {
		return nil, 0, ""
	}
	rs, err := c.rolesAt(s.Subject, s.Groups)
	switch {
	case errors.Is(err, errInactive):
		c.auth.end(s.id)
		c.log.Info("console session ended: the account is not active", "user", s.User, "user_id", rs.UserID)
		return nil, http.StatusForbidden, "Your Rampart account is not active: your console session has ended."
	case err != nil:
		// The session stays; this request is refused.
		c.log.Warn("console: the person's account cannot be read", "user", s.User, "err", err)
		return nil, http.StatusServiceUnavailable, "Your access cannot be checked right now. Try again in a minute."
	case !rs.Auditor && !rs.Approver:
		c.auth.end(s.id)
		c.log.Info("console session ended: no console role left", "user", s.User, "user_id", rs.UserID)
		return nil, http.StatusForbidden, "You no longer have a role in the console: your console session has ended."
	}
	s.setStanding(rs)
	return s, 0, ""
}

// setStanding sets the session's roles and account as rs found them.
func (s *consoleSession) setStanding(rs standing) {
	s.Admin, s.Auditor, s.Approver, s.UserID = rs.Admin, rs.Auditor, rs.Approver, rs.UserID
}

type sessionKey struct{}

// withSession returns ctx carrying the signed-in person of a request, for
// the audit events written while it is served.
func withSession(ctx context.Context, s *consoleSession) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// sessionFrom returns the signed-in person ctx carries, or nil.
func sessionFrom(ctx context.Context) *consoleSession {
	s, _ := ctx.Value(sessionKey{}).(*consoleSession)
	return s
}

func unionGroups(a, b []string) []string {
	out := slices.Clone(a)
	for _, g := range b {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// name is the role the sign-in event records: the widest one.
func (rs roles) name() string {
	switch {
	case rs.Admin:
		return "admin"
	case rs.Auditor:
		return "auditor"
	}
	return "approver"
}

// auditFields adds the roles to a sign-in event's fields: role, and
// approver=true when an auditor is an approver too.
func (rs roles) auditFields(f map[string]string) {
	f["role"] = rs.name()
	if rs.Approver && rs.name() != "approver" {
		f["approver"] = "true"
	}
}

// may reports whether the session's roles open pages that need need.
func (s *consoleSession) may(need role) bool {
	switch need {
	case roleAny:
		return true
	case roleAuditor:
		return s.Auditor || s.Admin
	case roleAdmin:
		return s.Admin
	case roleDecider:
		return s.Admin || s.Approver
	}
	return false
}

// refusal is what a person whose roles do not allow need is told ("" when
// they do).
func (s *consoleSession) refusal(need role) string {
	if s.may(need) {
		return ""
	}
	switch need {
	case roleAuditor:
		if s.Approver {
			return "Only auditors and administrators may see sessions and recordings. You may decide access requests."
		}
		return "Only auditors and administrators may see sessions and recordings."
	case roleDecider:
		return "Only approvers of access requests and administrators may see this page."
	}
	return "Only administrators may do this."
}

// Home is the first page the session's roles open.
func (s *consoleSession) Home() string {
	if s.may(roleAuditor) {
		return Prefix
	}
	return Prefix + "requests"
}

// Role is the widest role, as the page header shows it.
func (s *consoleSession) Role() string {
	return roles{Admin: s.Admin, Auditor: s.Auditor, Approver: s.Approver}.name()
}
