package httpapi

import (
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/raftstore"
)

// agentTables are the tables an agent's desired state is computed from,
// watched whole. Of the servers table only the agent's own row matters,
// watched by row and counted by its ModifyIndex: every agent's heartbeat
// (ServerSeen) writes that table, and counting or watching it whole would
// wake the whole fleet, or answer its next poll at once, at each one. The
// nodes table gives the cluster's addresses, which agents follow.
var agentTables = []string{"users", "groups", "grants", "entitlements", "projects", "ca", "nodes", raftstore.TableAccessRequests}

// agentState computes what server serverID must look like: who may log in
// (gateway/access AgentView: the accounts of everyone in a group granted to
// its project, disabled and deleted ones too so the agent deprovisions
// them, the granted groups that are valid unix group names, the sudo
// entitlements the grants carry, its shared logins and whether it allows
// personal keys), the project's user CA keys, the host CA that signs host
// certificates now, and the API addresses of the cluster's nodes. It adds
// what it reads to ws.
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
	view, err := access.New(st, nil, nil).AgentView(ws, srv.Project, adminEntitlement)
	if err != nil {
		return nil, err
	}
	out := &api.AgentState{Index: idx, ServerID: srv.ID, Project: srv.Project,
		Users: view.Users, Groups: view.Groups, Entitlements: view.Entitlements, UserCAKeys: []string{},
		SharedLogins: view.SharedLogins, AllowPersonalKeys: view.AllowPersonalKeys}
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
	return out, nil
}
