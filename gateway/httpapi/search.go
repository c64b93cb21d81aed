package httpapi

import (
	"maps"
	"net/http"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/console"
	"github.com/rampart-ssh/rampart/gateway/control"
)

// Searcher finds sessions by the text typed and shown in them: the
// console's full-text index (gateway/console.Index).
type Searcher interface {
	Search(q string, f console.Filter, limit int) ([]console.Hit, error)
	// Locate finds where a hit shows q (reading its session's lines).
	Locate(h *console.Hit, q string)
}

// SetSearch makes GET /v1/search answer from idx; without it the route
// answers 503. Call it before serving.
func (s *Server) SetSearch(idx Searcher) { s.searcher = idx }

// maxSearchHits bounds one search's answer: each hit is located by
// reading its session's lines.
const (
	maxSearchHits     = 100
	defaultSearchHits = 50
)

// search is GET /v1/search?q=...&user=&server=&project=&limit=: the
// sessions whose output, exec commands or sftp paths hold q as a phrase,
// newest first, each with the moment (seconds into the recording) it
// first shows. It answers what recordings showed, so it needs the
// recording scope (admin, auditor), and every search is audited
// (console.EventSessionSearch) before it is answered.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s.searcher == nil {
		s.writeError(w, r, Errorf(http.StatusServiceUnavailable, "search is not enabled on this node (console.enabled)"))
		return
	}
	text := q.Get("q")
	if text == "" || len(text) > console.MaxQueryLen {
		s.writeError(w, r, invalidf("q must be 1 to %d characters", console.MaxQueryLen))
		return
	}
	limit := defaultSearchHits
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSearchHits {
			s.writeError(w, r, invalidf("limit must be 1 to %d", maxSearchHits))
			return
		}
		limit = n
	}
	hits, err := s.searcher.Search(text, console.Filter{User: q.Get("user"), Server: q.Get("server"), Project: q.Get("project")}, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	actor := adminActor(r)
	fields := console.SearchAuditFields(text, hits)
	maps.Copy(fields, actor.Fields)
	if err := (control.StoreAuditor{Store: s.store, Now: s.now}).Record(r.Context(), console.EventSessionSearch, actor.Name, fields); err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.SearchResult{Hits: make([]api.SearchHit, 0, len(hits))}
	for i := range hits {
		h := &hits[i]
		s.searcher.Locate(h, text)
		out.Hits = append(out.Hits, api.SearchHit{Session: h.Session, User: h.User, Server: h.Server, Project: h.Project,
			Start: h.Start, Offset: h.Offset, Recording: h.Recording, Text: h.Text, InOutput: h.InOutput})
	}
	writeJSON(w, http.StatusOK, out)
}
