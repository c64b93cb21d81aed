package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
)

// Index is the full-text index of sessions: each session one document
// holding its terminal output (ANSI removed), its exec commands and sftp
// paths, searchable as phrases, with the output's lines stored so a hit can
// name its moment. It is a bleve index on the node's disk, rebuilt from
// the recordings the node can read (Indexer).
type Index struct {
	idx bleve.Index
	// mu serialises writes with the existence checks before them.
	mu sync.Mutex
}

// Doc is what one session contributes to the index.
type Doc struct {
	Session, User, Server, Project string
	Start                          time.Time
	Lines                          []Line
	// Commands are exec commands and sftp paths (no time in the recording).
	Commands []string
}

// Hit is one session a search found, and where.
type Hit struct {
	Session string  `json:"session"`
	User    string  `json:"user"`
	Server  string  `json:"server"`
	Project string  `json:"project"`
	Start   string  `json:"start"`
	Offset  float64 `json:"offset"`
	// Text is the line (or command) the query was found in.
	Text string `json:"text"`
	// InOutput: the hit is in the terminal output (Offset is its moment),
	// not in a command or path.
	InOutput bool `json:"in_output"`
}

// indexDoc is how a session is stored in bleve.
type indexDoc struct {
	Text     string    `json:"text"`
	User     string    `json:"user"`
	Server   string    `json:"server"`
	Project  string    `json:"project"`
	Start    time.Time `json:"start"`
	Lines    string    `json:"lines"`
	Commands string    `json:"commands"`
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
	for _, f := range []string{"lines", "commands"} {
		stored := bleve.NewTextFieldMapping()
		stored.Index, stored.Store, stored.IncludeInAll, stored.DocValues = false, true, false, false
		dm.AddFieldMappingsAt(f, stored)
	}
	im.DefaultMapping = dm
	im.DefaultAnalyzer = "standard"
	return im
}

// OpenIndex opens the index at dir, creating it if it is not there; dir ""
// keeps it in memory.
func OpenIndex(dir string) (*Index, error) {
	if dir == "" {
		idx, err := bleve.NewMemOnly(indexMapping())
		if err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		return &Index{idx: idx}, nil
	}
	idx, err := bleve.Open(dir)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		idx, err = bleve.New(dir, indexMapping())
	}
	if err != nil {
		// The index is a cache of the recordings: one that cannot be
		// opened is rebuilt.
		if rerr := os.RemoveAll(dir); rerr != nil {
			return nil, fmt.Errorf("search index %s: %w", dir, err)
		}
		if idx, err = bleve.New(dir, indexMapping()); err != nil {
			return nil, fmt.Errorf("search index %s: %w", dir, err)
		}
	}
	return &Index{idx: idx}, nil
}

// Close closes the index.
func (x *Index) Close() error { return x.idx.Close() }

// Has reports whether a session is indexed.
func (x *Index) Has(session string) bool {
	d, err := x.idx.Document(session)
	return err == nil && d != nil
}

// Add indexes (or re-indexes) one session.
func (x *Index) Add(d Doc) error {
	b, err := d.indexDoc()
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.idx.Index(d.Session, b)
}

// AddBatch indexes many sessions at once (rebuilds, benchmarks).
func (x *Index) AddBatch(docs []Doc) error {
	b := x.idx.NewBatch()
	for _, d := range docs {
		id, err := d.indexDoc()
		if err != nil {
			return err
		}
		if err := b.Index(d.Session, id); err != nil {
			return err
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.idx.Batch(b)
}

func (d Doc) indexDoc() (indexDoc, error) {
	var text strings.Builder
	for _, l := range d.Lines {
		text.WriteString(l.Text)
		text.WriteByte('\n')
	}
	for _, c := range d.Commands {
		text.WriteString(c)
		text.WriteByte('\n')
	}
	lines, err := json.Marshal(d.Lines)
	if err != nil {
		return indexDoc{}, err
	}
	cmds, err := json.Marshal(d.Commands)
	if err != nil {
		return indexDoc{}, err
	}
	return indexDoc{Text: text.String(), User: d.User, Server: d.Server, Project: d.Project, Start: d.Start.UTC(),
		Lines: string(lines), Commands: string(cmds)}, nil
}

// Filter narrows a search to sessions of a person, server or project.
type Filter struct {
	User, Server, Project string
}

// MaxQueryLen bounds a search's text.
const MaxQueryLen = 200

// Search finds the sessions whose text holds q as a phrase, newest first,
// at most limit of them, with the first moment each shows it.
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
	req := bleve.NewSearchRequestOptions(bleve.NewConjunctionQuery(conj...), limit, 0, false)
	req.Fields = []string{"user", "server", "project", "start", "lines", "commands"}
	req.SortBy([]string{"-start", "_id"})
	res, err := x.idx.Search(req)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	hits := make([]Hit, 0, len(res.Hits))
	for _, h := range res.Hits {
		str := func(k string) string { s, _ := h.Fields[k].(string); return s }
		hit := Hit{Session: h.ID, User: str("user"), Server: str("server"), Project: str("project"), Start: str("start")}
		hit.locate(q, str("lines"), str("commands"))
		hits = append(hits, hit)
	}
	return hits, nil
}

// locate finds the first output line (or else command) holding q, ignoring
// case and runs of non-word characters the index ignores too.
func (h *Hit) locate(q, linesJSON, cmdsJSON string) {
	want := squash(q)
	var lines []Line
	_ = json.Unmarshal([]byte(linesJSON), &lines)
	for _, l := range lines {
		if strings.Contains(squash(l.Text), want) {
			h.Offset, h.Text, h.InOutput = l.T, l.Text, true
			return
		}
	}
	var cmds []string
	_ = json.Unmarshal([]byte(cmdsJSON), &cmds)
	for _, c := range cmds {
		if strings.Contains(squash(c), want) {
			h.Text = c
			return
		}
	}
	// The phrase spans lines: the first line with its first word.
	first := strings.Fields(want)
	for _, l := range lines {
		if len(first) > 0 && strings.Contains(squash(l.Text), first[0]) {
			h.Offset, h.Text, h.InOutput = l.T, l.Text, true
			return
		}
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
