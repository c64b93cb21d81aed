package httpapi

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

func (s *Server) putServer(w http.ResponseWriter, r *http.Request) {
	var in api.Server
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.ID != "" && in.ID != r.PathValue("id") {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "body names server %q but the path names %q", in.ID, r.PathValue("id")))
		return
	}
	port := in.SSHPort
	if port == 0 {
		port = raftstore.DefaultSSHPort
	}
	res, err := s.store.Apply(r.Context(), &raftstore.ServerUpsert{Server: raftstore.Server{
		ID: r.PathValue("id"), Project: in.Project, Name: in.Name, AltNames: in.AltNames, Addr: in.Addr, SSHPort: port,
		HostKeys: in.HostKeys, Labels: in.Labels, EnrollMethod: raftstore.EnrollManual,
	}, Now: s.now().UTC()})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var stored raftstore.Server
	if err := res.Decode(&stored); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, serverToAPI(&stored))
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	if _, err := s.store.Apply(r.Context(), &raftstore.ServerDelete{ID: r.PathValue("id")}); err != nil {
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
	role := raftstore.GrantRole(in.Role)
	if role == "" {
		role = raftstore.GrantUser
	}
	if _, err := s.store.Apply(r.Context(), &raftstore.GrantUpsert{Grant: raftstore.Grant{
		Project: r.PathValue("name"), Group: r.PathValue("group"), Role: role, Sudo: in.Sudo,
	}, Now: s.now().UTC()}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	if _, err := s.store.Apply(r.Context(), &raftstore.GrantDelete{Project: r.PathValue("name"), Group: r.PathValue("group")}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// hostCAKeys publishes the host CA keys to trust (for @cert-authority lines).
// They are public: anyone about to connect may fetch them.
func (s *Server) hostCAKeys(w http.ResponseWriter, r *http.Request) {
	s.caKeys(w, r, raftstore.CAHost, "")
}

// userCAKeys publishes a project's user CA keys (for TrustedUserCAKeys).
// They are public, but making the CA is a raft write: only an administrator
// (bearer token) or a cluster node (node certificate) makes it on first use.
// Anyone else gets the keys of a CA that exists, and the same 404 for a
// project that does not exist and for one without a CA yet, so that the
// route neither writes for strangers nor tells them which projects exist.
// (A project's CA is made at the latest when its first server enrolls or
// its first certificate is minted.)
func (s *Server) userCAKeys(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("project")
	mayCreate, err := s.mayCreateUserCA(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !mayCreate {
		if err := s.store.CheckFresh(); err != nil {
			s.writeError(w, r, err)
			return
		}
		_, recs, err := s.store.State().CAsFor(nil, raftstore.CAUser, project)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !slices.ContainsFunc(recs, func(rec *raftstore.CARecord) bool { return rec.State != raftstore.CARetired }) {
			s.writeError(w, r, Errorf(http.StatusNotFound, "no user CA for project %q", project))
			return
		}
		s.caKeys(w, r, raftstore.CAUser, project)
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
// node. A request without credentials is anonymous (false, nil); a bearer
// token that is not valid is refused, not taken as anonymous.
func (s *Server) mayCreateUserCA(w http.ResponseWriter, r *http.Request) (bool, error) {
	if r.Header.Get("Authorization") != "" {
		if err := s.checkAdmin(w, r, true); err != nil {
			return false, err
		}
		return true, nil
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false, nil
	}
	role, id, ok := ca.Identity(r.TLS.VerifiedChains[0][0])
	if !ok || role != ca.RoleNode {
		return false, nil
	}
	_, n, err := s.store.State().NodeByID(nil, id)
	if err != nil {
		return false, err
	}
	return n != nil, nil
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
