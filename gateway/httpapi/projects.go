package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// readMode prepares a read: ?consistent=true waits for a leader-confirmed
// index; otherwise the local replica must be fresh.
func (s *Server) readMode(r *http.Request) error {
	if r.URL.Query().Get("consistent") == "true" {
		return s.store.ConsistentRead(r.Context())
	}
	return s.store.CheckFresh()
}

// blocking parses ?index= and ?wait=.
func blocking(r *http.Request) (minIndex uint64, wait time.Duration, err error) {
	q := r.URL.Query()
	if v := q.Get("index"); v != "" {
		if minIndex, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, Errorf(http.StatusBadRequest, "index %q is not a number", v)
		}
	}
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			return 0, 0, Errorf(http.StatusBadRequest, "wait %q is not a duration such as 30s", v)
		}
	}
	return minIndex, wait, nil
}

// listProjects lists the projects, one page by name (serveList).
func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, func(p api.Project) string { return p.Name }, mapped((*raftstore.State).Projects, projectToAPI, nil))
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, p, err := s.store.State().ProjectByName(nil, r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p == nil {
		s.writeError(w, r, Errorf(http.StatusNotFound, "project %q not found", r.PathValue("name")))
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, projectToAPI(p))
}

func (s *Server) putProject(w http.ResponseWriter, r *http.Request) {
	var in api.Project
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	stored, err := s.control.PutProject(r.Context(), adminActor(r), name, func(cur *raftstore.Project) (raftstore.Project, error) {
		p, err := projectFromAPI(name, &in, cur)
		if err != nil {
			return raftstore.Project{}, err
		}
		return *p, nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(stored.ModifyIndex, 10))
	writeJSON(w, http.StatusOK, projectToAPI(stored))
}

func projectToAPI(p *raftstore.Project) api.Project {
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	st := p.Settings
	return api.Project{Name: p.Name, Description: p.Description, ModifyIndex: p.ModifyIndex, Settings: api.ProjectSettings{
		CertTTL: dur(st.CertTTL), Recording: &st.Recording, RecordInput: st.RecordInput, RecordingFailOpen: st.RecordingFailOpen,
		AllowLocalForward: st.AllowLocalForward, AllowRemoteForward: st.AllowRemoteForward, AllowAgentForward: st.AllowAgentForward,
		SharedLogins: st.SharedLogins, IdleTimeout: dur(st.IdleTimeout), MaxSessionDuration: dur(st.MaxSessionDuration), RequireHostCertificate: st.RequireHostCertificate,
		ServerNames:       st.ServerNames,
		AllowPersonalKeys: st.AllowPersonalKeys,
	}}
}

// projectFromAPI is the project a PUT asks for; cur is the stored one (nil:
// the PUT creates it), whose recording setting an absent one keeps.
func projectFromAPI(name string, in *api.Project, cur *raftstore.Project) (*raftstore.Project, error) {
	if in.Name != "" && in.Name != name {
		return nil, Errorf(http.StatusBadRequest, "body names project %q but the path names %q", in.Name, name)
	}
	dur := func(field, v string) (time.Duration, error) {
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, Errorf(http.StatusBadRequest, "%s %q is not a duration such as 3m", field, v)
		}
		return d, nil
	}
	st := in.Settings
	certTTL, err1 := dur("cert_ttl", st.CertTTL)
	idle, err2 := dur("idle_timeout", st.IdleTimeout)
	maxSession := st.MaxSessionDuration
	if st.LegacyMaxSessionDuration != "" {
		if maxSession != "" && maxSession != st.LegacyMaxSessionDuration {
			return nil, Errorf(http.StatusBadRequest, "max_session %q and max_session_duration (its old name) %q differ: give max_session only",
				maxSession, st.LegacyMaxSessionDuration)
		}
		maxSession = st.LegacyMaxSessionDuration
	}
	maxDur, err3 := dur("max_session", maxSession)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return nil, err
		}
	}
	recording := raftstore.DefaultProjectSettings().Recording
	switch {
	case st.Recording != nil:
		recording = *st.Recording
	case cur != nil:
		recording = cur.Settings.Recording
	}
	// The access-request policy is set in the admin shell (requests
	// policy); a PUT keeps it.
	var requests *raftstore.RequestPolicy
	if cur != nil {
		requests = cur.Settings.Requests
	}
	return &raftstore.Project{Name: name, Description: in.Description, Settings: raftstore.ProjectSettings{
		CertTTL: certTTL, Recording: recording, RecordInput: st.RecordInput, RecordingFailOpen: st.RecordingFailOpen,
		AllowLocalForward: st.AllowLocalForward, AllowRemoteForward: st.AllowRemoteForward, AllowAgentForward: st.AllowAgentForward,
		SharedLogins: st.SharedLogins, IdleTimeout: idle, MaxSessionDuration: maxDur, RequireHostCertificate: st.RequireHostCertificate,
		ServerNames:       st.ServerNames,
		AllowPersonalKeys: st.AllowPersonalKeys,
		Requests:          requests,
	}}, nil
}
