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
	x := &Explanation{Grants: grants}
	seen := map[string]bool{}
	for _, g := range grants {
		if seen[g.Project] {
			continue
		}
		seen[g.Project] = true
		pe := ProjectExplanation{Project: g.Project}
		acc, err := e.projectAccess(user, g.Project)
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
