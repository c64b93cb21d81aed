package console

import (
	"slices"

	"github.com/rampart-ssh/rampart/gateway/control"
)

// The console's roles, decided once at sign-in:
//
//   - admin: the ID token names oidc.admin_group. Everything an auditor
//     sees, live sessions, and every project's access requests.
//   - auditor: the ID token names console.auditor_group. Sessions,
//     recordings, search and share links.
//   - approver: the person has an active Rampart account (found by the ID
//     token's subject, as SSH sign-in made it) and is a member of some
//     project's approver groups, by the ID token's groups and the groups
//     SCIM gives the account. The requests page only, unless they are an
//     auditor too.
//
// Anyone else is refused. The roles decide which pages open; they never
// decide an access request: each approval or denial goes to
// gateway/control, which checks the account and its groups as they are in
// the replicated state at that moment (control.ConsoleDecider).

// roles is what a sign-in found.
type roles struct {
	Admin, Auditor, Approver bool
}

// rolesAt decides the roles of the person with IdP subject sub whose ID
// token names groups.
func (c *Console) rolesAt(sub string, groups []string) roles {
	var rs roles
	rs.Admin = c.cfg.AdminGroup != "" && slices.Contains(groups, c.cfg.AdminGroup)
	rs.Auditor = rs.Admin || slices.Contains(groups, c.cfg.AuditorGroup)
	if c.deps.Requests == nil {
		return rs
	}
	st := c.deps.State.State()
	u, err := control.ConsoleAccount(st, sub)
	if err != nil {
		return rs
	}
	// The token's groups are the IdP's word now; the account's token
	// groups may be older. SCIM's groups come only from the account.
	projects, err := control.ApproverProjects(st, unionGroups(groups, u.SCIMGroups))
	if err != nil {
		c.log.Warn("console sign-in: projects cannot be read; approver role not given", "user", u.Login, "err", err)
		return rs
	}
	rs.Approver = len(projects) > 0
	return rs
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
