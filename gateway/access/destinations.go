package access

import (
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Destination is a server a person may reach from this node, and the
// logins they may use there.
type Destination struct {
	Server  *raftstore.Server
	Project string
	// Logins are the logins Authorize allows, the person's own first.
	Logins []string
}

// Destinations lists the servers user may reach through this node's jump,
// by name: exactly those for which Authorize, asked for the server's name
// on its SSH port, allows some login. An inactive person has none.
func (e *Evaluator) Destinations(user *raftstore.User) ([]Destination, error) {
	_, grants, err := e.st.UserProjects(nil, user)
	if err != nil {
		return nil, err
	}
	var projects []string
	for _, g := range grants {
		if !slices.Contains(projects, g.Project) {
			projects = append(projects, g.Project)
		}
	}
	reqs, err := e.activeRequests(user, "")
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if !slices.Contains(projects, r.Project) {
			projects = append(projects, r.Project)
		}
	}
	out := []Destination{}
	for _, p := range projects {
		acc, err := e.projectAccess(user, p)
		if refusal(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		logins, err := acc.Logins(user)
		if err != nil {
			return nil, err
		}
		_, servers, err := e.st.ServersByProject(nil, p)
		if err != nil {
			return nil, err
		}
		for _, srv := range servers {
			if _, err := e.DialAddr(srv); err != nil {
				continue
			}
			out = append(out, Destination{Server: srv, Project: p, Logins: logins})
		}
	}
	slices.SortFunc(out, func(a, b Destination) int { return strings.Compare(a.Server.Name, b.Server.Name) })
	return out, nil
}
