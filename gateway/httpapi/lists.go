package httpapi

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// lists: cursors, limits and blocking reads, the same for every list.

// Page sizes: ?limit= defaults to defaultPageLimit and may not pass
// maxPageLimit.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

// page is a list request's ?cursor= (the key after which to start) and
// ?limit=.
type page struct {
	after string
	limit int
}

// pageOf reads ?cursor= and ?limit=. A cursor is opaque to clients: the
// base64url of the last key of the page before.
func pageOf(r *http.Request) (page, error) {
	q := r.URL.Query()
	p := page{limit: defaultPageLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return p, &fault.Error{Status: http.StatusBadRequest, Code: "invalid_limit",
				Msg: "limit " + strconv.Quote(v) + " is not a number from 1 to " + strconv.Itoa(maxPageLimit)}
		}
		p.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			return p, &fault.Error{Status: http.StatusBadRequest, Code: "invalid_cursor",
				Msg: "cursor " + strconv.Quote(v) + " is not one this API gave out"}
		}
		p.after = string(raw)
	}
	return p, nil
}

func cursorOf(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// paginate returns the page of items (sorted by key, ascending) after p's
// cursor.
func paginate[T any](items []T, key func(T) string, p page) api.Page[T] {
	start := 0
	if p.after != "" {
		start, _ = slices.BinarySearchFunc(items, p.after, func(it T, k string) int {
			switch ik := key(it); {
			case ik < k:
				return -1
			case ik > k:
				return 1
			}
			return 0
		})
		if start < len(items) && key(items[start]) == p.after {
			start++
		}
	}
	out := api.Page[T]{Items: []T{}}
	end := min(start+p.limit, len(items))
	if start < end {
		out.Items = items[start:end]
	}
	if end < len(items) && end > start {
		out.NextCursor = cursorOf(key(items[end-1]))
	}
	return out
}

// serveList answers a list: it checks the read mode, parses the page and
// ?index=&wait= (blocking until the tables query reads move past index),
// and writes one page of what query returns, sorted by key.
func serveList[T any](s *Server, w http.ResponseWriter, r *http.Request, key func(T) string,
	query func(ws memdb.WatchSet, st *raftstore.State) (uint64, []T, error)) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := pageOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	minIndex, wait, err := blocking(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if minIndex != 0 {
		s.holdFor(w, blockingHold(wait))
	}
	var items []T
	idx, err := raftstore.BlockingQuery(r.Context(), s.store.FSM(), minIndex, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
		idx, got, err := query(ws, st)
		items = got
		return idx, err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	slices.SortFunc(items, func(a, b T) int {
		switch ka, kb := key(a), key(b); {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, paginate(items, key, p))
}

// mapped runs query (a State method expression) and converts each row with conv, dropping those keep
// refuses (nil keep: all).
func mapped[R any, T any](query func(*raftstore.State, memdb.WatchSet) (uint64, []*R, error), conv func(*R) T, keep func(*R) bool) func(memdb.WatchSet, *raftstore.State) (uint64, []T, error) {
	return func(ws memdb.WatchSet, st *raftstore.State) (uint64, []T, error) {
		idx, rows, err := query(st, ws)
		if err != nil {
			return 0, nil, err
		}
		out := make([]T, 0, len(rows))
		for _, row := range rows {
			if keep == nil || keep(row) {
				out = append(out, conv(row))
			}
		}
		return idx, out, nil
	}
}

// notFoundf is a 404 with the code not_found.
func notFoundf(format string, args ...any) error {
	e := Errorf(http.StatusNotFound, format, args...).(*fault.Error)
	e.Code = "not_found"
	return e
}

// invalidf is a 400 with the code invalid.
func invalidf(format string, args ...any) error {
	e := Errorf(http.StatusBadRequest, format, args...).(*fault.Error)
	e.Code = "invalid"
	return e
}
