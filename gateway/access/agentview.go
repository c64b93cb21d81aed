package access

import (
	"slices"
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// AgentView is the part of a server's desired state that says who may log
// in: its project's people, unix groups and sudo rules, the logins it
// shares, and whether personal keys work.
type AgentView struct {
	// Users are everyone in a group granted to the project, disabled and
	// deleted people too (their Status tells the agent to lock them).
	// An active one is exactly a person Authorize lets in as their own
	// unix name on the project's servers (when the project exists): people
	// holding an approved request for their own login whose window is open
	// are among them, with no groups and no sudo rules of the request's.
	Users []api.AgentUser
	// Groups are the granted groups that are valid unix group names.
	Groups []api.AgentGroup
	// Entitlements are the sudo rules the grants carry, by name.
	Entitlements      []api.Entitlement
	SharedLogins      []string
	AllowPersonalKeys bool
}

// AgentView computes what the servers of project must allow. A grant with
// the admin role adds adminEntitlement (when set) to its members' sudo
// rules. It adds what it reads to ws.
func (e *Evaluator) AgentView(ws memdb.WatchSet, project, adminEntitlement string) (*AgentView, error) {
	_, grants, err := e.st.GrantsByProject(ws, project)
	if err != nil {
		return nil, err
	}
	granted := map[string]*raftstore.Grant{}
	for _, g := range grants {
		granted[g.Group] = g
	}
	out := &AgentView{Users: []api.AgentUser{}, Groups: []api.AgentGroup{}, Entitlements: []api.Entitlement{}}
	_, users, err := e.st.Users(ws)
	if err != nil {
		return nil, err
	}
	requested, err := e.requestedUsers(ws, project)
	if err != nil {
		return nil, err
	}
	unixGroups := map[string]bool{}
	sudoNames := map[string]bool{}
	for _, u := range users {
		mine := projectGrants(u, granted)
		if len(mine) == 0 {
			if requested[u.ID] {
				out.Users = append(out.Users, api.AgentUser{Name: u.UnixName, UID: u.UID, Login: u.Login, Status: string(u.Status), Groups: []string{}})
			}
			continue
		}
		var groups, sudo []string
		for _, gr := range mine {
			if unixGroupName(gr.Group) {
				groups = append(groups, gr.Group)
				unixGroups[gr.Group] = true
			}
			sudo = append(sudo, gr.Sudo...)
			if gr.Role == raftstore.GrantAdmin && adminEntitlement != "" {
				sudo = append(sudo, adminEntitlement)
			}
		}
		slices.Sort(sudo)
		sudo = slices.Compact(sudo)
		for _, s := range sudo {
			sudoNames[s] = true
		}
		out.Users = append(out.Users, api.AgentUser{Name: u.UnixName, UID: u.UID, Login: u.Login, Status: string(u.Status), Groups: nonNil(groups), Sudo: sudo})
	}
	for name := range unixGroups {
		_, g, err := e.st.GroupByName(ws, name)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out.Groups = append(out.Groups, api.AgentGroup{Name: g.Name, GID: g.GID})
		}
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	for name := range sudoNames {
		_, ent, err := e.st.EntitlementByName(ws, name)
		if err != nil {
			return nil, err
		}
		if ent == nil {
			continue
		}
		v := api.Entitlement{Name: ent.Name, RunAs: ent.RunAs, NoPasswd: ent.NoPasswd, NoExec: ent.NoExec, SetEnv: ent.SetEnv, EnvKeep: ent.EnvKeep}
		for _, c := range ent.Commands {
			v.Commands = append(v.Commands, api.SudoCommand{Path: c.Path, Args: c.Args})
		}
		out.Entitlements = append(out.Entitlements, v)
	}
	sort.Slice(out.Entitlements, func(i, j int) bool { return out.Entitlements[i].Name < out.Entitlements[j].Name })
	_, p, err := e.st.ProjectByName(ws, project)
	if err != nil {
		return nil, err
	}
	if p != nil {
		out.SharedLogins = p.Settings.SharedLogins
		out.AllowPersonalKeys = p.Settings.AllowPersonalKeys
	}
	return out, nil
}

// requestedUsers are the people holding an approved request for their own
// login on project whose window is open now.
func (e *Evaluator) requestedUsers(ws memdb.WatchSet, project string) (map[string]bool, error) {
	_, reqs, err := e.st.AccessRequestsByProject(ws, project)
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := map[string]bool{}
	for _, r := range reqs {
		if !r.ActiveAt(now) {
			continue
		}
		_, u, err := e.st.UserByID(ws, r.UserID)
		if err != nil {
			return nil, err
		}
		if u != nil && r.Login == u.UnixName {
			out[u.ID] = true
		}
	}
	return out, nil
}

// unixGroupName admits IdP group names that are already unix names the
// agent creates (api.ValidUnixName); others still grant access but do not
// become unix groups.
func unixGroupName(g string) bool {
	return api.ValidUnixName(g) == nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
