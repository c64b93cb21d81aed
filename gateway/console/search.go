package console

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
)

// Index is the full-text index of sessions: each session one document
// holding its terminal output (ANSI removed, every recording of the
// session), its exec commands and sftp paths, searchable as phrases. The
// text a hit is shown with is not stored in the index: each session's
// lines are kept beside it (lineStore), read a line at a time for the few
// hits a page shows (Locate). It is a bleve index on the node's disk,
// rebuilt from the recordings the node can read (Indexer).
type Index struct {
	idx   bleve.Index
	lines lineStore
	// mu serialises writes.
	mu sync.Mutex
}

// Doc is what one session contributes to the index.
type Doc struct {
	Session, User, Server, Project string
	Start                          time.Time
	// Lines of the session's first recording.
	Lines []Line
	// Later are the lines of its later recordings (other channels).
	Later []RecordingLines
	// Commands are exec commands and sftp paths (no time in the recording).
	Commands []string
}

// Hit is one session a search found, and where (once located).
type Hit struct {
	Session string  `json:"session"`
	User    string  `json:"user"`
	Server  string  `json:"server"`
	Project string  `json:"project"`
	Start   string  `json:"start"`
	Offset  float64 `json:"offset"`
	// Recording is the recording Offset is in: "" for the session's first,
	// "<id>-2", ... for a later channel's.
	Recording string `json:"recording,omitempty"`
	// Text is the line (or command) the query was found in.
	Text string `json:"text"`
	// InOutput: the hit is in the terminal output (Offset is its moment),
	// not in a command or path.
	InOutput bool `json:"in_output"`
}

// indexDoc is how a session is stored in bleve: only the short fields are
// stored.
type indexDoc struct {
	Text    string    `json:"text"`
	User    string    `json:"user"`
	Server  string    `json:"server"`
	Project string    `json:"project"`
	Start   time.Time `json:"start"`
}

func indexMapping() mapping.IndexMapping {
	im := bleve.NewIndexMapping()
	dm := bleve.NewDocumentMapping()
	text := bleve.NewTextFieldMapping()
	text.Analyzer = "standard"
	// Term vectors hold the positions a phrase query needs.
	text.Store, text.IncludeTermVectors, text.IncludeInAll = false, true, false
	dm.AddFieldMappingsAt("text", text)
	for _, f := range []string{"user", "server", "project"} {
		kw := bleve.NewKeywordFieldMapping()
		kw.IncludeInAll = false
		dm.AddFieldMappingsAt(f, kw)
	}
	start := bleve.NewDateTimeFieldMapping()
	start.IncludeInAll = false
	dm.AddFieldMappingsAt("start", start)
	im.DefaultMapping = dm
	im.DefaultAnalyzer = "standard"
	return im
}

// indexFormat names the layout of an index on disk; an index of another
// (older: the output's lines stored in it) is rebuilt.
const indexFormat = "2"

var indexFormatKey = []byte("rampart-index-format")

// OpenIndex opens the index at dir (its lines in dir + ".lines"),
// creating it if it is not there; dir "" keeps it in memory.
func OpenIndex(dir string) (*Index, error) {
	if dir == "" {
		idx, err := bleve.NewMemOnly(indexMapping())
		if err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		return &Index{idx: idx, lines: newLineStore("")}, nil
	}
	idx, err := bleve.Open(dir)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		idx, err = bleve.New(dir, indexMapping())
		if err == nil {
			err = idx.SetInternal(indexFormatKey, []byte(indexFormat))
		}
	} else if err == nil {
		if v, gerr := idx.GetInternal(indexFormatKey); gerr != nil || string(v) != indexFormat {
			_ = idx.Close()
			err = fmt.Errorf("index format %q, want %s", v, indexFormat)
		}
	}
	if err != nil {
		// The index is a cache of the recordings: one that cannot be
		// opened (or is of another format) is rebuilt.
		if rerr := errors.Join(os.RemoveAll(dir), os.RemoveAll(dir+".lines")); rerr != nil {
			return nil, fmt.Errorf("search index %s: %w", dir, err)
		}
		if idx, err = bleve.New(dir, indexMapping()); err == nil {
			err = idx.SetInternal(indexFormatKey, []byte(indexFormat))
		}
		if err != nil {
			return nil, fmt.Errorf("search index %s: %w", dir, err)
		}
	}
	return &Index{idx: idx, lines: newLineStore(dir + ".lines")}, nil
}

// Close closes the index.
func (x *Index) Close() error { return x.idx.Close() }

// Has reports whether a session is indexed (without reading its stored
// fields).
func (x *Index) Has(session string) bool {
	req := bleve.NewSearchRequestOptions(bleve.NewDocIDQuery([]string{session}), 1, 0, false)
	res, err := x.idx.Search(req)
	return err == nil && res.Total > 0
}

// IDs returns every indexed session, reading no stored field.
func (x *Index) IDs() (map[string]bool, error) {
	out := map[string]bool{}
	var after []string
	for {
		req := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), 10_000, 0, false)
		req.SortBy([]string{"_id"})
		if after != nil {
			req.SearchAfter = after
		}
		res, err := x.idx.Search(req)
		if err != nil {
			return nil, fmt.Errorf("list the search index: %w", err)
		}
		for _, h := range res.Hits {
			out[h.ID] = true
		}
		if len(res.Hits) < 10_000 {
			return out, nil
		}
		after = []string{res.Hits[len(res.Hits)-1].ID}
	}
}

// Add indexes (or re-indexes) one session.
func (x *Index) Add(d Doc) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.lines.put(d); err != nil {
		return err
	}
	return x.idx.Index(d.Session, d.indexDoc())
}

// AddBatch indexes many sessions at once (rebuilds, benchmarks).
func (x *Index) AddBatch(docs []Doc) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.idx.NewBatch()
	for _, d := range docs {
		if err := x.lines.put(d); err != nil {
			return err
		}
		if err := b.Index(d.Session, d.indexDoc()); err != nil {
			return err
		}
	}
	return x.idx.Batch(b)
}

// Delete removes a session from the index (its recordings are gone).
func (x *Index) Delete(session string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.idx.Delete(session); err != nil {
		return fmt.Errorf("search index: delete %s: %w", session, err)
	}
	return x.lines.remove(session)
}

func (d Doc) indexDoc() indexDoc {
	var text strings.Builder
	for _, l := range d.Lines {
		text.WriteString(l.Text)
		text.WriteByte('\n')
	}
	for _, r := range d.Later {
		for _, l := range r.Lines {
			text.WriteString(l.Text)
			text.WriteByte('\n')
		}
	}
	for _, c := range d.Commands {
		text.WriteString(c)
		text.WriteByte('\n')
	}
	return indexDoc{Text: text.String(), User: d.User, Server: d.Server, Project: d.Project, Start: d.Start.UTC()}
}

// Filter narrows a search to sessions of a person, server or project, or
// to one session.
type Filter struct {
	User, Server, Project, Session string
}

// MaxQueryLen bounds a search's text.
const MaxQueryLen = 200

// Search finds the sessions whose text holds q as a phrase, newest first,
// at most limit of them. It reads only the short stored fields: Locate
// finds where each hit shows q, for the hits a page shows.
func (x *Index) Search(q string, f Filter, limit int) ([]Hit, error) {
	q = strings.TrimSpace(q)
	if q == "" || len(q) > MaxQueryLen {
		return nil, fmt.Errorf("a search is 1 to %d characters", MaxQueryLen)
	}
	phrase := bleve.NewMatchPhraseQuery(q)
	phrase.SetField("text")
	conj := []query.Query{phrase}
	for field, v := range map[string]string{"user": f.User, "server": f.Server, "project": f.Project} {
		if v != "" {
			t := bleve.NewTermQuery(v)
			t.SetField(field)
			conj = append(conj, t)
		}
	}
	if f.Session != "" {
		conj = append(conj, bleve.NewDocIDQuery([]string{f.Session}))
	}
	req := bleve.NewSearchRequestOptions(bleve.NewConjunctionQuery(conj...), limit, 0, false)
	req.Fields = []string{"user", "server", "project", "start"}
	req.SortBy([]string{"-start", "_id"})
	res, err := x.idx.Search(req)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	hits := make([]Hit, 0, len(res.Hits))
	for _, h := range res.Hits {
		str := func(k string) string { s, _ := h.Fields[k].(string); return s }
		hits = append(hits, Hit{Session: h.ID, User: str("user"), Server: str("server"), Project: str("project"), Start: str("start")})
	}
	return hits, nil
}

// Locate sets where h shows q: the first output line holding it (or else
// command), ignoring case and runs of non-word characters the index
// ignores too; a phrase spanning lines, the first line with its first
// word. It reads the session's lines one at a time.
func (x *Index) Locate(h *Hit, q string) {
	want := squash(q)
	first, _, _ := strings.Cut(want, " ")
	var cmd, fallback *Line
	var fallbackRec string
	err := x.lines.scan(h.Session, func(l Line, rec string, isCmd bool) bool {
		sq := squash(l.Text)
		switch {
		case isCmd:
			if cmd == nil && strings.Contains(sq, want) {
				cmd = &l
			}
		case strings.Contains(sq, want):
			h.Offset, h.Recording, h.Text, h.InOutput = l.T, rec, l.Text, true
			return false
		case fallback == nil && first != "" && strings.Contains(sq, first):
			fallback, fallbackRec = &l, rec
		}
		return true
	})
	if err != nil || h.InOutput {
		return
	}
	if cmd != nil {
		h.Text = cmd.Text
		return
	}
	if fallback != nil {
		h.Offset, h.Recording, h.Text, h.InOutput = fallback.T, fallbackRec, fallback.Text, true
	}
}

// squash lower-cases s and turns every run of characters that are not
// letters or digits into one space, as the index's tokenizer sees text.
func squash(s string) string {
	var b strings.Builder
	space := true
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 0x7f {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSpace(b.String())
}

// EventSessionSearch: someone searched the sessions' text (the console or
// GET /v1/search). Fields: query, hits (how many), sessions (the first
// maxAuditedSessions hit, comma-separated), source, and via (console) or
// token_id (the API).
const EventSessionSearch = "session.search"

// maxAuditedSessions bounds the sessions a search event names.
const maxAuditedSessions = 20

// SearchAuditFields are a search's event fields (EventSessionSearch),
// without who asked.
func SearchAuditFields(q string, hits []Hit) map[string]string {
	ids := make([]string, 0, min(len(hits), maxAuditedSessions))
	for _, h := range hits[:min(len(hits), maxAuditedSessions)] {
		ids = append(ids, h.Session)
	}
	if len(q) > MaxQueryLen {
		q = strings.ToValidUTF8(q[:MaxQueryLen], "")
	}
	return map[string]string{"query": q, "hits": strconv.Itoa(len(hits)), "sessions": strings.Join(ids, ",")}
}
