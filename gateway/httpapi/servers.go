package httpapi

import (
	"net/http"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// putServer registers a server by hand or edits one (control.RegisterServer:
// an omitted address or port keeps the current one, an enrolled server keeps
// what its enrollment recorded, and the address must pass the target rule).
func (s *Server) putServer(w http.ResponseWriter, r *http.Request) {
	var in api.Server
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if in.ID != "" && in.ID != id {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "body names server %q but the path names %q", in.ID, id))
		return
	}
	stored, err := s.control.RegisterServer(r.Context(), adminActor(r), raftstore.Server{
		ID: id, Project: in.Project, Name: in.Name, AltNames: in.AltNames, Addr: in.Addr, SSHPort: in.SSHPort,
		HostKeys: in.HostKeys, Labels: in.Labels,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(stored.ModifyIndex, 10))
	writeJSON(w, http.StatusOK, serverToAPI(stored))
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	if _, err := s.control.DeleteServer(r.Context(), adminActor(r), r.PathValue("id"), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func serverToAPI(v *raftstore.Server) api.Server {
	return api.Server{ID: v.ID, Project: v.Project, Name: v.Name, AltNames: v.AltNames, Addr: v.Addr, SSHPort: v.SSHPort, HostKeys: v.HostKeys, Labels: v.Labels}
}

func (s *Server) putGrant(w http.ResponseWriter, r *http.Request) {
	var in api.Grant
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.control.Grant(r.Context(), adminActor(r), raftstore.Grant{
		Project: r.PathValue("name"), Group: r.PathValue("group"), Role: raftstore.GrantRole(in.Role), Sudo: in.Sudo,
	}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	if err := s.control.RevokeGrant(r.Context(), adminActor(r), r.PathValue("name"), r.PathValue("group")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// hostCAKeys publishes the target host CA keys to trust (for the
// @cert-authority line of targets). They are public: anyone about to
// connect may fetch them.
func (s *Server) hostCAKeys(w http.ResponseWriter, r *http.Request) {
	s.caKeys(w, r, raftstore.CAHost, "")
}

// nodeHostCAKeys publishes the node host CA keys to trust (for the
// @cert-authority line of the bastion's own names).
func (s *Server) nodeHostCAKeys(w http.ResponseWriter, r *http.Request) {
	s.caKeys(w, r, raftstore.CANodeHost, "")
}

// userCAKeys publishes a project's user CA keys (for the TrustedUserCAKeys
// of a server registered by hand; agents receive them in their state), and
// makes the CA on first use. Only an administrator (bearer token) or a
// member node (node certificate) may ask: anyone else gets the same 401
// whatever the project, so that the route neither writes for strangers nor
// tells them which projects exist.
func (s *Server) userCAKeys(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project")
	may, answered, err := s.mayCreateUserCA(w, r)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return
	case answered:
		return
	case !may:
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		s.authFailed(w, r, "no admin token or member node certificate for a user CA",
			Errorf(http.StatusUnauthorized, "an admin token or a cluster node certificate is required"))
		return
	}
	_, p, err := s.store.State().ProjectByName(nil, project)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p == nil {
		s.writeError(w, r, Errorf(http.StatusNotFound, "project %q not found", project))
		return
	}
	if err := s.cluster.EnsureUserCA(r.Context(), project); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.caKeys(w, r, raftstore.CAUser, project)
}

// mayCreateUserCA reports whether r comes from an administrator or a member
// node (for the key it joined with). A request without credentials is
// anonymous (false); a bearer token that is not valid is refused, not taken
// as anonymous: then answered is set, as checkAdmin has answered r.
func (s *Server) mayCreateUserCA(w http.ResponseWriter, r *http.Request) (may, answered bool, err error) {
	if r.Header.Get("Authorization") != "" {
		if !s.checkAdmin(w, r, true) {
			return false, true, nil
		}
		return true, false, nil
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false, false, nil
	}
	leaf := r.TLS.VerifiedChains[0][0]
	role, id, ok := api.Identity(leaf)
	if !ok || role != api.RoleNode {
		return false, false, nil
	}
	_, n, err := s.store.State().NodeByID(nil, id)
	if err != nil {
		return false, false, err
	}
	return n != nil && n.HoldsKey(leaf.PublicKey), false, nil
}

func (s *Server) caKeys(w http.ResponseWriter, r *http.Request, kind raftstore.CAKind, project string) {
	if err := s.store.CheckFresh(); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, recs, err := s.store.State().CAsFor(nil, kind, project)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.CAKeys{Keys: []string{}}
	for _, rec := range recs {
		if rec.State != raftstore.CARetired {
			out.Keys = append(out.Keys, rec.PublicKey)
		}
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
}
