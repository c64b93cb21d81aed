package access

import (
	"github.com/rampart-ssh/rampart/raftstore"
)

// Explanation is what an administrator is shown of what a person may reach.
type Explanation struct {
	// Grants are the grants of the person's groups, ordered by id, whether
	// or not the person is active: an administrator sees what enabling
	// them would give back.
	Grants []*raftstore.Grant
	// Requests are the person's approved access requests whose window is
	// open: grants for them alone, until ExpiresAt.
	Requests []*raftstore.AccessRequest
	// Projects are the granted projects in the order of Grants, each with
	// the logins the person may use on its servers now, or why none.
	Projects []ProjectExplanation
	// LiveBindings counts the person's device bindings that have not
	// expired: keys that sign in without the browser.
	LiveBindings int
}

// ProjectExplanation is one granted project's verdict.
type ProjectExplanation struct {
	Project string
	// Logins are those Authorize allows on the project's servers; empty
	// when Refused is set.
	Logins []string
	// Refused is why the person may not reach the project's servers now
	// (disabled, or the project is gone), in the words the jump would use.
	Refused error
}

// Explain says what user may reach, and why.
func (e *Evaluator) Explain(user *raftstore.User) (*Explanation, error) {
	active := *user
	active.Status = raftstore.UserActive
	_, grants, err := e.st.UserProjects(nil, &active)
	if err != nil {
		return nil, err
	}
	reqs, err := e.activeRequests(user, "")
	if err != nil {
		return nil, err
	}
	x := &Explanation{Grants: grants, Requests: reqs}
	var projects []string
	for _, g := range grants {
		projects = append(projects, g.Project)
	}
	for _, r := range reqs {
		projects = append(projects, r.Project)
	}
	seen := map[string]bool{}
	for _, project := range projects {
		if seen[project] {
			continue
		}
		seen[project] = true
		pe := ProjectExplanation{Project: project}
		acc, err := e.projectAccess(user, project)
		switch {
		case refusal(err):
			pe.Refused = err
		case err != nil:
			return nil, err
		default:
			if pe.Logins, err = acc.Logins(user); err != nil {
				return nil, err
			}
		}
		x.Projects = append(x.Projects, pe)
	}
	_, bindings, err := e.st.BindingsByUser(nil, user.ID)
	if err != nil {
		return nil, err
	}
	now := e.now()
	for _, b := range bindings {
		if now.Before(b.ExpiresAt) {
			x.LiveBindings++
		}
	}
	return x, nil
}
