package httpapi

import (
	"net/http"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/console"
)

// Searcher finds sessions by the text typed and shown in them: the
// console's full-text index (gateway/console.Index).
type Searcher interface {
	Search(q string, f console.Filter, limit int) ([]console.Hit, error)
}

// SetSearch makes GET /v1/search answer from idx; without it the route
// answers 503. Call it before serving.
func (s *Server) SetSearch(idx Searcher) { s.searcher = idx }

// maxSearchHits bounds one search's answer.
const maxSearchHits = 1000

// search is GET /v1/search?q=...&user=&server=&project=&limit=: the
// sessions whose output, exec commands or sftp paths hold q as a phrase,
// newest first, each with the moment (seconds into the recording) it
// first shows.
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
	limit := 100
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
	out := api.SearchResult{Hits: make([]api.SearchHit, 0, len(hits))}
	for _, h := range hits {
		out.Hits = append(out.Hits, api.SearchHit{Session: h.Session, User: h.User, Server: h.Server, Project: h.Project,
			Start: h.Start, Offset: h.Offset, Text: h.Text, InOutput: h.InOutput})
	}
	writeJSON(w, http.StatusOK, out)
}
