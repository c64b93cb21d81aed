package control

import (
	"slices"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Who a person signed in to the web console decides access requests as.
// The console knows them by their ID token; the rules of requests are
// about Rampart accounts (nobody decides their own request, two approvals
// come from two people, approvers are members of a project's approver
// groups). So the console decides as the account the person's SSH sign-in
// made, found by the same IdP subject, read afresh for every decision: what
// the console cached at sign-in never decides.

// ConsoleDecider returns who the console person with IdP subject sub
// decides as: their account, which must be active. admin says the console
// signed them in as an administrator (their ID token named adminGroup); it
// counts only while the account's token groups still name adminGroup (the
// groups the admin shell re-checks too), so an administrator the IdP has
// since taken out decides, at most, as an approver.
func ConsoleDecider(st *raftstore.State, sub string, admin bool, adminGroup string) (raftstore.Decider, error) {
	u, err := ConsoleAccount(st, sub)
	if err != nil {
		return raftstore.Decider{}, err
	}
	isAdmin := admin && adminGroup != "" && slices.Contains(u.GroupsFromToken(), adminGroup)
	return raftstore.Decider{ID: u.ID, Login: u.Login, Admin: isAdmin}, nil
}

// ConsoleAccount returns the active account of IdP subject sub, or a 403
// saying the person has none.
func ConsoleAccount(st *raftstore.State, sub string) (*raftstore.User, error) {
	if sub == "" {
		return nil, forbidden("Rampart has no account for you")
	}
	_, u, err := st.UserBySubject(nil, sub)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, forbidden("Rampart has no account for you yet: sign in once with ssh, then try again")
	}
	if u.Status != raftstore.UserActive {
		return nil, forbidden("your Rampart account is not active")
	}
	return u, nil
}

// MayDecide returns nil when by may approve or deny r, by the checks
// ApproveAccessRequest and DenyAccessRequest make before they write (the
// state machine makes them again): not their own, and an approver of its
// project or an administrator. It does not look at r's state.
func MayDecide(st *raftstore.State, r *raftstore.AccessRequest, by raftstore.Decider) error {
	return checkDecider(st, r, by, false)
}

// ApproverProjects lists the projects taking requests whose approver
// groups hold one of groups, by name.
func ApproverProjects(st *raftstore.State, groups []string) ([]string, error) {
	_, ps, err := st.Projects(nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		if p.Settings.Requests != nil && p.Settings.Requests.MayApprove(groups) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}
