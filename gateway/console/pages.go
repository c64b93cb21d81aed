package console

import (
	"cmp"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Outcomes a session list can be filtered by.
const (
	OutcomeNormal          = "normal"
	OutcomeKilled          = "killed"
	OutcomeRevoked         = "revoked"
	OutcomeRecordingFailed = "recording_failed"
	OutcomeActive          = "active"
)

// Outcome classifies how a session ended, from its end reason.
func Outcome(s *raftstore.Session) string {
	r := s.EndReason
	switch {
	case s.Status == raftstore.SessionActive:
		return OutcomeActive
	case strings.HasPrefix(r, "ended by administrator"), strings.Contains(r, "administrator ended"):
		return OutcomeKilled
	case strings.Contains(r, "recording failed"), strings.Contains(r, "recording"):
		return OutcomeRecordingFailed
	case strings.Contains(r, "revoked"), strings.Contains(r, "disabled"), strings.Contains(r, "removed"),
		strings.Contains(r, "no longer"), strings.Contains(r, "changed"):
		return OutcomeRevoked
	}
	return OutcomeNormal
}

// row is one session in a list.
type row struct {
	ID, User, Server, Project, Node, Outcome, EndReason string
	Start, End                                          time.Time
	Recorded                                            bool
	Hit                                                 *Hit
}

// listFilter is the sessions page's form.
type listFilter struct {
	User, Server, Project, Since, Until, Outcome, Q string
	since, until                                    time.Time
}

func filterOf(r *http.Request) (listFilter, string) {
	q := r.URL.Query()
	f := listFilter{User: q.Get("user"), Server: q.Get("server"), Project: q.Get("project"), Since: q.Get("since"),
		Until: q.Get("until"), Outcome: q.Get("outcome"), Q: strings.TrimSpace(q.Get("q"))}
	for _, p := range []struct {
		v  string
		to *time.Time
	}{{f.Since, &f.since}, {f.Until, &f.until}} {
		if p.v == "" {
			continue
		}
		t, err := parseWhen(p.v)
		if err != nil {
			return f, "A time is YYYY-MM-DD, YYYY-MM-DDTHH:MM or RFC 3339."
		}
		*p.to = t
	}
	if len(f.Q) > MaxQueryLen {
		return f, "A search is at most " + strconv.Itoa(MaxQueryLen) + " characters."
	}
	return f, ""
}

func parseWhen(v string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// names resolves user and server ids to names.
type names struct {
	st      *raftstore.State
	users   map[string]string
	servers map[string]string
}

func (n *names) user(id string) string {
	if v, ok := n.users[id]; ok {
		return v
	}
	v := id
	if _, u, err := n.st.UserByID(nil, id); err == nil && u != nil {
		v = u.Login
	}
	n.users[id] = v
	return v
}

func (n *names) server(id string) string {
	if v, ok := n.servers[id]; ok {
		return v
	}
	v := id
	if _, s, err := n.st.ServerByID(nil, id); err == nil && s != nil {
		v = s.Name
	}
	n.servers[id] = v
	return v
}

func newNames(st *raftstore.State) *names {
	return &names{st: st, users: map[string]string{}, servers: map[string]string{}}
}

func (n *names) row(s *raftstore.Session) row {
	return row{ID: s.ID, User: n.user(s.UserID), Server: n.server(s.ServerID), Project: s.Project, Node: s.Node,
		Outcome: Outcome(s), EndReason: s.EndReason, Start: s.Start, End: s.End, Recorded: s.RecordingPath != ""}
}

const listLimit = 200

// maxSearchHits bounds the sessions one search reads from the index;
// searchShown, the hits a page shows (and locates).
const (
	maxSearchHits = 1000
	searchShown   = 50
)

// auditSearch records a search (EventSessionSearch) with the sessions it
// showed; false when it could not be recorded: a search nobody can account
// for is not answered.
func (c *Console) auditSearch(r *http.Request, who *consoleSession, q string, shown []Hit) bool {
	fields := SearchAuditFields(q, shown)
	fields["source"], fields["via"] = r.RemoteAddr, "console"
	return c.audit(r.Context(), EventSessionSearch, who.User, fields) == nil
}

// sessionsPage is GET /console/: the filterable list, or the search hits.
func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	f, problem := filterOf(r)
	data := struct {
		F       listFilter
		Rows    []row
		Problem string
		Search  bool
		More    bool
	}{F: f, Problem: problem}
	if problem != "" {
		c.render(w, http.StatusBadRequest, "sessions", view{Title: "Sessions", Who: who, Data: data})
		return
	}
	st := c.deps.State.State()
	n := newNames(st)
	keep := func(s *raftstore.Session, rw row) bool {
		return (f.User == "" || rw.User == f.User || s.UserID == f.User) &&
			(f.Server == "" || rw.Server == f.Server || s.ServerID == f.Server) &&
			(f.Project == "" || s.Project == f.Project) &&
			(f.since.IsZero() || !s.Start.Before(f.since)) &&
			(f.until.IsZero() || s.Start.Before(f.until)) &&
			(f.Outcome == "" || rw.Outcome == f.Outcome)
	}
	if f.Q != "" {
		data.Search = true
		if c.deps.Search == nil {
			data.Problem = "Search is not available on this node."
		} else {
			hits, err := c.deps.Search.Search(f.Q, Filter{}, maxSearchHits)
			if err != nil {
				c.log.Warn("console search failed", "err", err)
				data.Problem = "The search failed; try other words."
			}
			var shown []Hit
			for i := range hits {
				_, s, err := st.SessionByID(nil, hits[i].Session)
				if err != nil || s == nil {
					continue
				}
				rw := n.row(s)
				if !keep(s, rw) {
					continue
				}
				if len(data.Rows) == searchShown {
					data.More = true
					break
				}
				// Only the hits shown are located: each reads its
				// session's lines.
				c.deps.Search.Locate(&hits[i], f.Q)
				rw.Hit = &hits[i]
				data.Rows = append(data.Rows, rw)
				shown = append(shown, hits[i])
			}
			if err == nil && !c.auditSearch(r, who, f.Q, shown) {
				c.fail(w, r, http.StatusServiceUnavailable, "The search could not be audited; try again later.")
				return
			}
		}
		c.render(w, http.StatusOK, "sessions", view{Title: "Search", Who: who, Data: data})
		return
	}
	_, all, err := st.Sessions(nil)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The sessions cannot be read right now.")
		return
	}
	slices.SortFunc(all, func(a, b *raftstore.Session) int {
		return cmp.Or(b.Start.Compare(a.Start), strings.Compare(a.ID, b.ID))
	})
	for _, s := range all {
		rw := n.row(s)
		if !keep(s, rw) {
			continue
		}
		if len(data.Rows) == listLimit {
			data.More = true
			break
		}
		data.Rows = append(data.Rows, rw)
	}
	c.render(w, http.StatusOK, "sessions", view{Title: "Sessions", Who: who, Data: data})
}

// event is one audit event beside the player.
type event struct {
	Time   time.Time
	Type   string
	Actor  string
	Fields [][2]string
}

// maxEvents bounds the events one session page shows (the oldest).
const maxEvents = 2000

// sessionEvents are the audit events that name a session, oldest first,
// read through the audit log's session index (however old or recent).
func sessionEvents(st *raftstore.State, id string) []event {
	_, evs, _, err := st.AuditOfSession(nil, id, maxEvents)
	if err != nil {
		return nil
	}
	out := make([]event, 0, len(evs))
	for _, e := range evs {
		ev := event{Time: e.Time, Type: e.Type, Actor: e.Actor}
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			if k != "session" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			ev.Fields = append(ev.Fields, [2]string{k, e.Fields[k]})
		}
		out = append(out, ev)
	}
	return out
}

// sessionPage is GET /console/sessions/{id}: the player, the events, the
// download, share and (admins, live sessions) end buttons.
func (c *Console) sessionPage(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	st := c.deps.State.State()
	_, s, err := st.SessionByID(nil, r.PathValue("id"))
	if err != nil || s == nil {
		c.fail(w, r, http.StatusNotFound, "There is no such session.")
		return
	}
	q := r.URL.Query()
	type recLink struct {
		Name, URL string
		Current   bool
	}
	data := struct {
		S           row
		Active      bool
		Events      []event
		CastURL     string
		DownloadURL string
		StartAt     string
		Markers     string
		Query       string
		Hits        []Hit
		ShareLink   string
		// Recording is the one played ("": the first); Recordings lists
		// them all when there are more.
		Recording  string
		Recordings []recLink
	}{S: newNames(st).row(s), Active: s.Status == raftstore.SessionActive, Events: sessionEvents(st, s.ID),
		StartAt: q.Get("t"), Query: q.Get("q")}
	names := recordingNames(st, s)
	if rec := q.Get("r"); rec != s.ID && slices.Contains(names, rec) {
		data.Recording = rec
	}
	data.CastURL, data.DownloadURL = castURL(s.ID, data.Recording, false), castURL(s.ID, data.Recording, true)
	if len(names) > 1 {
		for _, n := range names {
			cur := n == data.Recording || data.Recording == "" && n == s.ID
			if n == s.ID {
				n = ""
			}
			u := Prefix + "sessions/" + url.PathEscape(s.ID)
			if n != "" {
				u += "?r=" + url.QueryEscape(n)
			}
			data.Recordings = append(data.Recordings, recLink{Name: cmp.Or(n, s.ID), URL: u, Current: cur})
		}
	}
	if t, err := strconv.ParseFloat(data.StartAt, 64); err != nil || t < 0 {
		data.StartAt = ""
	}
	if data.Query != "" && c.deps.Search != nil && len(data.Query) <= MaxQueryLen {
		// This session's document alone.
		hits, err := c.deps.Search.Search(data.Query, Filter{Session: s.ID}, 1)
		for i := range hits {
			c.deps.Search.Locate(&hits[i], data.Query)
		}
		if err == nil && !c.auditSearch(r, who, data.Query, hits) {
			c.fail(w, r, http.StatusServiceUnavailable, "The search could not be audited; try again later.")
			return
		}
		for _, h := range hits {
			if h.InOutput && h.Recording == data.Recording {
				data.Hits = append(data.Hits, h)
				data.Markers = strconv.FormatFloat(h.Offset, 'f', 3, 64)
			}
		}
	}
	if link := q.Get("shared"); link != "" {
		data.ShareLink = c.justShared(link, s.ID, who.User)
	}
	c.render(w, http.StatusOK, "session", view{Title: "Session " + s.ID, Who: who, Data: data})
}

// sessionCast is GET /console/sessions/{id}/cast: the recording, for the
// player or (?download=1) as a .cast file. Every view is audited.
func (c *Console) sessionCast(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	c.serveCast(w, r, r.PathValue("id"), who.User, map[string]string{"source": r.RemoteAddr}, r.URL.Query().Get("download") == "1")
}

// castURL is where the player (or download) reads recording rec ("": the
// first) of session id.
func castURL(id, rec string, download bool) string {
	v := url.Values{}
	if rec != "" {
		v.Set("r", rec)
	}
	if download {
		v.Set("download", "1")
	}
	u := Prefix + "sessions/" + url.PathEscape(id) + "/cast"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

func (c *Console) serveCast(w http.ResponseWriter, r *http.Request, id, actor string, fields map[string]string, download bool) {
	_, s, err := c.deps.State.State().SessionByID(nil, id)
	switch {
	case err != nil || s == nil:
		http.Error(w, "no such session", http.StatusNotFound)
		return
	case s.Status != raftstore.SessionClosed || s.RecordingPath == "":
		http.Error(w, "this session has no finished recording", http.StatusNotFound)
		return
	}
	// ?r= names a later recording of the session (another channel's).
	rec := r.URL.Query().Get("r")
	if rec != "" && !slices.Contains(recordingNames(c.deps.State.State(), s), rec) {
		http.Error(w, "this session has no such recording", http.StatusNotFound)
		return
	}
	rc, err := openRecording(r.Context(), c.deps.Recordings, s, rec)
	if err != nil {
		c.log.Warn("console: recording cannot be opened", "session", id, "node", s.Node, "err", err)
		http.Error(w, "the recording cannot be read right now; try again later", http.StatusBadGateway)
		return
	}
	defer rc.Close()
	fields["session"], fields["server"], fields["project"] = id, s.ServerID, s.Project
	if rec != "" {
		fields["recording"] = rec
	}
	fields["how"] = "play"
	if download {
		fields["how"] = "download"
	}
	// The view is audited before a byte is sent: an unaudited view is none.
	if err := c.audit(r.Context(), EventRecordingView, actor, fields); err != nil {
		http.Error(w, "the view could not be audited; try again later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/x-asciicast")
	if download {
		w.Header().Set("Content-Disposition", `attachment; filename="`+safeFileName(cmp.Or(rec, id))+`.cast"`)
	}
	if _, err := io.Copy(w, rc); err != nil && !errors.Is(err, r.Context().Err()) {
		c.log.Warn("console: recording transfer ended early", "session", id, "err", err)
	}
}

func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// livePage is GET /console/live: every live session in the cluster.
func (c *Console) livePage(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	st := c.deps.State.State()
	_, all, err := st.Sessions(nil)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The sessions cannot be read right now.")
		return
	}
	n := newNames(st)
	var rows []row
	for _, s := range all {
		if s.Status == raftstore.SessionActive {
			rows = append(rows, n.row(s))
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return b.Start.Compare(a.Start) })
	c.render(w, http.StatusOK, "live", view{Title: "Live sessions", Who: who, Data: struct {
		Rows  []row
		Ended string
	}{rows, r.URL.Query().Get("ended")}})
}

// maxReasonLen bounds the reason an admin gives for ending a session.
const maxReasonLen = 200

// killSession is POST /console/sessions/{id}/kill (admins).
func (c *Console) killSession(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" || len(reason) > maxReasonLen || strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		c.fail(w, r, http.StatusBadRequest, "Give a reason of 1 to 200 characters on one line, without control or formatting characters: the person will see it.")
		return
	}
	id := r.PathValue("id")
	if err := c.deps.Killer.EndSession(r.Context(), control.Actor{Name: who.User, UserID: who.UserID, Fields: map[string]string{"source": r.RemoteAddr, "via": "console"}}, id, reason); err != nil {
		c.log.Warn("console: end session failed", "session", id, "user", who.User, "err", err)
		c.fail(w, r, http.StatusConflict, "The session could not be ended: it may have ended already.")
		return
	}
	http.Redirect(w, r, Prefix+"live?ended="+url.QueryEscape(id), http.StatusSeeOther)
}
