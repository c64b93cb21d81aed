package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// the admin API's reads of users, groups, entitlements, servers, grants,
// enrollment tokens, bindings and cluster members, and the changes to them
// (each through control, which validates and audits it).

func userToAPI(u *raftstore.User) api.User {
	g := u.Groups
	if g == nil {
		g = []string{}
	}
	return api.User{ID: u.ID, Login: u.Login, Email: u.Email, UnixName: u.UnixName, UID: u.UID, Status: string(u.Status),
		Groups: g, Created: api.TimeOrNil(u.CreatedAt), Updated: api.TimeOrNil(u.UpdatedAt), DisabledByIdP: u.DisabledByIdP}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	switch raftstore.UserStatus(status) {
	case "", raftstore.UserActive, raftstore.UserDisabled, raftstore.UserDeleted:
	default:
		s.writeError(w, r, invalidf("status %q is not active, disabled or deleted", status))
		return
	}
	serveList(s, w, r, func(u api.User) string { return u.ID }, mapped((*raftstore.State).Users, userToAPI,
		func(u *raftstore.User) bool { return status == "" || string(u.Status) == status }))
}

// userRef finds a user by id, or else by IdP login.
func userRef(st *raftstore.State, ref string) (uint64, *raftstore.User, error) {
	idx, u, err := st.UserByID(nil, ref)
	if err != nil || u != nil {
		return idx, u, err
	}
	idx, u, err = st.UserByLogin(nil, ref)
	if err != nil {
		return 0, nil, err
	}
	if u == nil {
		return 0, nil, notFoundf("user %q not found", ref)
	}
	return idx, u, nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, u, err := userRef(s.store.State(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, userToAPI(u))
}

func (s *Server) disableUser(w http.ResponseWriter, r *http.Request) {
	s.setUserStatus(w, r, raftstore.UserDisabled)
}

func (s *Server) enableUser(w http.ResponseWriter, r *http.Request) {
	s.setUserStatus(w, r, raftstore.UserActive)
}

func (s *Server) setUserStatus(w http.ResponseWriter, r *http.Request, to raftstore.UserStatus) {
	id := r.PathValue("id")
	if _, u, err := userRef(s.store.State(), id); err == nil {
		id = u.ID // a login names the user; control checks again
	}
	u, err := s.control.SetUserStatus(r.Context(), adminActor(r), id, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(u.ModifyIndex, 10))
	writeJSON(w, http.StatusOK, userToAPI(u))
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, func(g api.Group) string { return g.Name }, mapped((*raftstore.State).Groups, func(g *raftstore.Group) api.Group {
		return api.Group{Name: g.Name, GID: g.GID, SCIM: g.SCIM, Created: api.TimeOrNil(g.CreatedAt)}
	}, nil))
}

func (s *Server) listEntitlements(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, func(e api.Entitlement) string { return e.Name }, mapped((*raftstore.State).Entitlements, func(e *raftstore.Entitlement) api.Entitlement {
		out := api.Entitlement{Name: e.Name, RunAs: e.RunAs, NoPasswd: e.NoPasswd, NoExec: e.NoExec, SetEnv: e.SetEnv, EnvKeep: e.EnvKeep, Commands: []api.SudoCommand{}}
		for _, c := range e.Commands {
			out.Commands = append(out.Commands, api.SudoCommand{Path: c.Path, Args: c.Args})
		}
		return out
	}, nil))
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request) {
	project := r.URL.Query().Get("project")
	serveList(s, w, r, func(v api.Server) string { return v.ID }, mapped((*raftstore.State).Servers, serverToAPI,
		func(v *raftstore.Server) bool { return project == "" || v.Project == project }))
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, v, err := s.store.State().ServerByID(nil, r.PathValue("id"))
	if err == nil && v == nil {
		err = notFoundf("server %q not found", r.PathValue("id"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, serverToAPI(v))
}

// ProjectGrant is a grant as GET /v1/projects/{name}/grants lists it.
type projectGrant struct {
	Group string   `json:"group"`
	Role  string   `json:"role"`
	Sudo  []string `json:"sudo,omitempty"`
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	serveList(s, w, r, func(g projectGrant) string { return g.Group }, func(ws memdb.WatchSet, st *raftstore.State) (uint64, []projectGrant, error) {
		_, p, err := st.ProjectByName(ws, name)
		if err == nil && p == nil {
			err = notFoundf("project %q not found", name)
		}
		if err != nil {
			return 0, nil, err
		}
		return mapped(func(st *raftstore.State, ws memdb.WatchSet) (uint64, []*raftstore.Grant, error) {
			return st.GrantsByProject(ws, name)
		}, func(g *raftstore.Grant) projectGrant {
			return projectGrant{Group: g.Group, Role: string(g.Role), Sudo: g.Sudo}
		}, nil)(ws, st)
	})
}

func (s *Server) clusterMembers(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.store.Status()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ms := st.Members
	if ms == nil {
		ms = []api.ClusterMember{}
	}
	writeJSON(w, http.StatusOK, paginate(ms, func(m api.ClusterMember) string { return m.ID }, p))
}

func enrollTokenToAPI(t *raftstore.Token) api.EnrollmentToken {
	out := api.EnrollmentToken{Hash: t.Hash, Kind: string(t.Kind), Project: t.Project, Description: t.Description,
		ExpiresAt: api.TimeOrNil(t.ExpiresAt), CreatedBy: t.CreatedBy, CreatedAt: api.TimeOrNil(t.CreatedAt)}
	if t.UsesLeft != raftstore.UnlimitedUses {
		n := t.UsesLeft
		out.UsesLeft = &n
	}
	return out
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	project := r.URL.Query().Get("project")
	serveList(s, w, r, func(t api.EnrollmentToken) string { return t.Hash }, mapped((*raftstore.State).Tokens, enrollTokenToAPI,
		func(t *raftstore.Token) bool { return project == "" || t.Project == project }))
}

// DefaultEnrollTokenTTL is an enrollment token's lifetime when the request
// gives none (the admin shell's default too).
const DefaultEnrollTokenTTL = 24 * time.Hour

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var in api.EnrollmentTokenRequest
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	ttl := DefaultEnrollTokenTTL
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil {
			s.writeError(w, r, invalidf("ttl %q is not a duration such as 24h", in.TTL))
			return
		}
		ttl = d
	}
	tok, stored, err := s.control.CreateToken(r.Context(), adminActor(r),
		control.TokenRequest{Kind: api.TokenEnroll, Project: in.Project, Description: in.Description, TTL: ttl, Uses: in.Uses})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedEnrollmentToken{Token: tok.String(), EnrollmentToken: enrollTokenToAPI(stored)})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.control.RevokeToken(r.Context(), adminActor(r), r.PathValue("hash")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	serveList(s, w, r, func(b api.Binding) string { return b.Fingerprint }, mapped((*raftstore.State).Bindings, func(b *raftstore.Binding) api.Binding {
		return api.Binding{Fingerprint: b.Fingerprint, UserID: b.UserID, ClientVersion: b.ClientVersion, SourceAddr: b.SourceAddr,
			CreatedAt: api.TimeOrNil(b.CreatedAt), ExpiresAt: api.TimeOrNil(b.ExpiresAt)}
	}, func(b *raftstore.Binding) bool { return user == "" || b.UserID == user }))
}

// revokeBindings revokes one key's binding, a user's, or all of them
// (control.RevokeBindings; all needs "all": true, which is the API's
// confirmation).
func (s *Server) revokeBindings(w http.ResponseWriter, r *http.Request) {
	var in api.BindingsRevoke
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, _, err := s.control.RevokeBindings(r.Context(), adminActor(r), control.Bindings{Fingerprint: in.Fingerprint, UserID: in.UserID, All: in.All}, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.BindingsRevoked{Revoked: n})
}

func caKeyToAPI(c *raftstore.CARecord) api.CAKey {
	return api.CAKey{ID: c.ID, Kind: string(c.Kind), Project: c.Project, Algorithm: c.Algorithm, PublicKey: c.PublicKey,
		State: string(c.State), CreatedAt: api.TimeOrNil(c.CreatedAt)}
}

// listCAKeys lists every CA key's public half, its kind, project and
// rotation state (next, active, retired); sealed private keys never leave.
func (s *Server) listCAKeys(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("kind")
	switch raftstore.CAKind(kind) {
	case "", raftstore.CAUser, raftstore.CAHost, raftstore.CANodeHost, raftstore.CATLS:
	default:
		s.writeError(w, r, &fault.Error{Status: http.StatusBadRequest, Code: "invalid",
			Msg: "kind " + strconv.Quote(kind) + " is not user, host, node-host or tls"})
		return
	}
	serveList(s, w, r, func(k api.CAKey) string { return k.ID }, mapped((*raftstore.State).CAs, caKeyToAPI,
		func(c *raftstore.CARecord) bool { return kind == "" || string(c.Kind) == kind }))
}

func controlServiceTokenRequest(in api.ServiceTokenRequest, ttl time.Duration) control.ServiceTokenRequest {
	return control.ServiceTokenRequest{Name: in.Name, Scope: in.Scope, TTL: ttl}
}
