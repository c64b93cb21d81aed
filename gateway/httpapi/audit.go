package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// the audit log and sessions (the auditor scope's routes), and service
// tokens.

// auditScan is how many events one read of the log takes.
const auditScan = 1000

// auditFilter selects events for GET /v1/audit.
type auditFilter struct {
	since, until                         time.Time
	typ, actor, session, server, project string
}

func auditFilterOf(r *http.Request) (auditFilter, error) {
	q := r.URL.Query()
	f := auditFilter{typ: q.Get("type"), actor: q.Get("actor"), session: q.Get("session"), server: q.Get("server"), project: q.Get("project")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.since}, {"until", &f.until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, invalidf("%s %q is not an RFC 3339 time such as 2027-01-02T03:04:05Z", p.name, v)
			}
			*p.to = t
		}
	}
	return f, nil
}

func (f *auditFilter) match(e *raftstore.AuditEvent) bool {
	fields := e.Fields
	switch {
	case !f.since.IsZero() && e.Time.Before(f.since),
		!f.until.IsZero() && !e.Time.Before(f.until),
		f.typ != "" && e.Type != f.typ && !strings.HasPrefix(e.Type, f.typ+"."),
		f.actor != "" && e.Actor != f.actor,
		f.session != "" && fields["session"] != f.session,
		f.server != "" && fields["server"] != f.server && fields["server_id"] != f.server,
		f.project != "" && fields["project"] != f.project:
		return false
	}
	return true
}

func auditToAPI(e *raftstore.AuditEvent) api.AuditEvent {
	f := e.Fields
	if f == nil {
		f = map[string]string{}
	}
	return api.AuditEvent{Seq: e.Seq, Time: e.Time.UTC(), Type: e.Type, Actor: e.Actor, Fields: f, PrevHash: e.PrevHash, Hash: e.Hash}
}

// listAudit pages through the log, oldest first, with the filters of
// auditFilter; ?index=&wait= waits for events past index.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	f, err := auditFilterOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := pageOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after uint64
	if p.after != "" {
		if after, err = strconv.ParseUint(p.after, 10, 64); err != nil {
			s.writeError(w, r, invalidf("cursor is not one of the audit log's"))
			return
		}
	}
	minIndex, wait, err := blocking(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if minIndex != 0 {
		s.holdFor(w, blockingHold(wait))
	}
	var out api.Page[api.AuditEvent]
	idx, err := raftstore.BlockingQuery(r.Context(), s.store.FSM(), minIndex, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
		out = api.Page[api.AuditEvent]{Items: []api.AuditEvent{}}
		idx, _, err := st.AuditLast(ws)
		if err != nil {
			return 0, err
		}
		from := after
		for {
			_, batch, err := st.AuditSince(nil, from, auditScan)
			if err != nil || len(batch) == 0 {
				return idx, err
			}
			for _, e := range batch {
				if !f.match(e) {
					continue
				}
				if len(out.Items) == p.limit {
					out.NextCursor = cursorOf(strconv.FormatUint(out.Items[len(out.Items)-1].Seq, 10))
					return idx, nil
				}
				out.Items = append(out.Items, auditToAPI(e))
			}
			from = batch[len(batch)-1].Seq
		}
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
}

func sessionToAPI(v *raftstore.Session) api.Session {
	return api.Session{ID: v.ID, UserID: v.UserID, Login: v.Login, ServerID: v.ServerID, Project: v.Project, Node: v.Node,
		SourceAddr: v.SourceAddr, Status: string(v.Status), Start: v.Start.UTC(), End: api.TimeOrNil(v.End), EndReason: v.EndReason,
		BytesIn: v.BytesIn, BytesOut: v.BytesOut, Recording: v.RecordingSHA256}
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status, user, server, project := q.Get("status"), q.Get("user"), q.Get("server"), q.Get("project")
	switch raftstore.SessionStatus(status) {
	case "", raftstore.SessionActive, raftstore.SessionClosed:
	default:
		s.writeError(w, r, invalidf("status %q is not active or closed", status))
		return
	}
	serveList(s, w, r, func(v api.Session) string { return v.ID }, mapped((*raftstore.State).Sessions, sessionToAPI, func(v *raftstore.Session) bool {
		return (status == "" || string(v.Status) == status) && (user == "" || v.UserID == user) &&
			(server == "" || v.ServerID == server) && (project == "" || v.Project == project)
	}))
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	idx, v, err := s.store.State().SessionByID(nil, r.PathValue("id"))
	if err == nil && v == nil {
		err = notFoundf("session %q not found", r.PathValue("id"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, sessionToAPI(v))
}

func (s *Server) killSession(w http.ResponseWriter, r *http.Request) {
	if err := s.control.KillSession(r.Context(), adminActor(r), r.PathValue("id"), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func serviceTokenToAPI(t *raftstore.ServiceToken) api.ServiceToken {
	return api.ServiceToken{ID: t.ID, Name: t.Name, Scope: t.Role, Owner: t.CreatedBy, CreatedAt: api.TimeOrNil(t.CreatedAt),
		ExpiresAt: api.TimeOrNil(t.ExpiresAt), LastUsedAt: api.TimeOrNil(t.LastUsedAt)}
}

func (s *Server) listServiceTokens(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, func(t api.ServiceToken) string { return t.ID }, mapped((*raftstore.State).ServiceTokens, serviceTokenToAPI, nil))
}

func (s *Server) createServiceToken(w http.ResponseWriter, r *http.Request) {
	var in api.ServiceTokenRequest
	if err := readJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	var ttl time.Duration
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil {
			s.writeError(w, r, invalidf("ttl %q is not a duration such as 720h", in.TTL))
			return
		}
		ttl = d
	}
	secret, stored, err := s.control.CreateServiceToken(r.Context(), adminActor(r), controlServiceTokenRequest(in, ttl))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedServiceToken{Token: secret, ServiceToken: serviceTokenToAPI(stored)})
}

func (s *Server) revokeServiceToken(w http.ResponseWriter, r *http.Request) {
	if _, err := s.control.RevokeServiceToken(r.Context(), adminActor(r), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
