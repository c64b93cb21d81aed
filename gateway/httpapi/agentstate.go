package httpapi

import (
	"fmt"
	"slices"
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// agentTables are the tables an agent's desired state is computed from,
// watched whole. Of the servers table only the agent's own row matters,
// watched by row and counted by its ModifyIndex: every agent's heartbeat
// (ServerSeen) writes that table, and counting or watching it whole would
// wake the whole fleet, or answer its next poll at once, at each one. The
// nodes table gives the cluster's addresses, which agents follow.
var agentTables = []string{"users", "groups", "grants", "entitlements", "projects", "ca", "nodes"}

// agentState computes what server serverID must look like: the accounts of
// everyone in a group granted to its project (disabled and deleted ones too,
// so the agent deprovisions them), the granted groups that are valid unix
// group names, the sudo entitlements the grants carry, the project's user
// CA keys, its shared logins and whether it allows personal keys, the host
// CA that signs host certificates now, and the API addresses of the
// cluster's nodes. It adds what it reads to ws.
func agentState(ws memdb.WatchSet, st *raftstore.State, serverID, adminEntitlement string) (*api.AgentState, error) {
	idx := st.MaxIndexWatch(ws, agentTables...)
	_, srv, err := st.ServerByID(ws, serverID)
	if err != nil {
		return nil, err
	}
	if srv == nil {
		return nil, fmt.Errorf("server %s: %w", serverID, raftstore.ErrNotFound)
	}
	idx = max(idx, srv.ModifyIndex)
	_, grants, err := st.GrantsByProject(ws, srv.Project)
	if err != nil {
		return nil, err
	}
	granted := map[string]*raftstore.Grant{}
	for _, g := range grants {
		granted[g.Group] = g
	}
	out := &api.AgentState{Index: idx, ServerID: srv.ID, Project: srv.Project,
		Users: []api.AgentUser{}, Groups: []api.AgentGroup{}, Entitlements: []api.Entitlement{}, UserCAKeys: []string{}}

	_, users, err := st.Users(ws)
	if err != nil {
		return nil, err
	}
	unixGroups := map[string]bool{}
	sudoNames := map[string]bool{}
	for _, u := range users {
		var groups, sudo []string
		member := false
		for _, g := range u.Groups {
			gr, ok := granted[g]
			if !ok {
				continue
			}
			member = true
			if unixGroupName(g) {
				groups = append(groups, g)
				unixGroups[g] = true
			}
			sudo = append(sudo, gr.Sudo...)
			if gr.Role == raftstore.GrantAdmin && adminEntitlement != "" {
				sudo = append(sudo, adminEntitlement)
			}
		}
		if !member {
			continue
		}
		slices.Sort(sudo)
		sudo = slices.Compact(sudo)
		for _, s := range sudo {
			sudoNames[s] = true
		}
		out.Users = append(out.Users, api.AgentUser{Name: u.UnixName, UID: u.UID, Login: u.Login, Status: string(u.Status), Groups: nonNil(groups), Sudo: sudo})
	}
	for name := range unixGroups {
		_, g, err := st.GroupByName(ws, name)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out.Groups = append(out.Groups, api.AgentGroup{Name: g.Name, GID: g.GID})
		}
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	for name := range sudoNames {
		_, e, err := st.EntitlementByName(ws, name)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		ent := api.Entitlement{Name: e.Name, RunAs: e.RunAs, NoPasswd: e.NoPasswd, NoExec: e.NoExec, SetEnv: e.SetEnv, EnvKeep: e.EnvKeep}
		for _, c := range e.Commands {
			ent.Commands = append(ent.Commands, api.SudoCommand{Path: c.Path, Args: c.Args})
		}
		out.Entitlements = append(out.Entitlements, ent)
	}
	sort.Slice(out.Entitlements, func(i, j int) bool { return out.Entitlements[i].Name < out.Entitlements[j].Name })
	_, project, err := st.ProjectByName(ws, srv.Project)
	if err != nil {
		return nil, err
	}
	if project != nil {
		out.SharedLogins = project.Settings.SharedLogins
	}
	_, cas, err := st.CAsFor(ws, raftstore.CAUser, srv.Project)
	if err != nil {
		return nil, err
	}
	for _, c := range cas {
		if c.State != raftstore.CARetired {
			out.UserCAKeys = append(out.UserCAKeys, c.PublicKey)
		}
	}
	_, hostCA, err := st.ActiveCA(ws, raftstore.CAHost, "")
	if err != nil {
		return nil, err
	}
	if hostCA != nil {
		out.HostCAKey = hostCA.PublicKey
	}
	_, nodes, err := st.Nodes(ws)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.APIAddr != "" {
			out.Cluster = append(out.Cluster, n.APIAddr)
		}
	}
	slices.Sort(out.Cluster)
	out.Cluster = slices.Compact(out.Cluster)
	_, p, err := st.ProjectByName(ws, srv.Project)
	if err != nil {
		return nil, err
	}
	out.AllowPersonalKeys = p != nil && p.Settings.AllowPersonalKeys
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
