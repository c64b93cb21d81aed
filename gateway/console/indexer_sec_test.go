package console

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// namedRecs serves recordings by name, fails those in broken, and counts
// opens.
type namedRecs struct {
	mu     sync.Mutex
	casts  map[string]string
	broken map[string]bool
	opens  map[string]int
}

func (f *namedRecs) Open(ctx context.Context, s *raftstore.Session) (io.ReadCloser, error) {
	return f.OpenNamed(ctx, s, s.ID)
}

func (f *namedRecs) OpenNamed(_ context.Context, _ *raftstore.Session, name string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens[name]++
	if f.broken[name] {
		return nil, errors.New("the node holding it is down")
	}
	return io.NopCloser(strings.NewReader(f.casts[name])), nil
}

func (f *namedRecs) count(name string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.opens[name] }

var t0 = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)

func closedSession(id string, end time.Time) []raftstore.Command {
	return []raftstore.Command{
		&raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: "u-1", Login: "ann", ServerID: "srv-1", Project: "web", Node: "n1", Start: end.Add(-time.Minute)}},
		&raftstore.SessionClose{ID: id, End: end, RecordingPath: id + ".cast", RecordingSHA256: strings.Repeat("a", 64), EndReason: "closed"},
	}
}

func holder(name, session string) *raftstore.RecordingHolderPut {
	return &raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{Name: name, Session: session, Node: "n1", Path: name + ".cast",
		SHA256: strings.Repeat("a", 64), Bytes: 10, At: t0}}
}

// newTestIndexer is an indexer over store whose passes the test runs,
// with a clock it moves.
func newTestIndexer(t *testing.T, store *raftstoretest.Store, recs *namedRecs, clock *time.Time) *Indexer {
	t.Helper()
	idx, err := OpenIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	ix := &Indexer{Index: idx, State: store, Recordings: recs, Now: func() time.Time { return *clock }}
	ix.init()
	return ix
}

// A session whose recording cannot be read is retried a bounded number of
// times, ever less often, then indexed without it; it never holds up a new
// session, and a pass with nothing new opens nothing.
func TestIndexerBoundedRetries(t *testing.T) {
	store := raftstoretest.New(t)
	store.MustApply(t, closedSession("s-bad", t0)...)
	recs := &namedRecs{casts: map[string]string{"s-new": cast([2]any{1.0, "fresh output\r\n"})}, broken: map[string]bool{"s-bad": true}, opens: map[string]int{}}
	clock := t0
	ix := newTestIndexer(t, store, recs, &clock)
	ctx := context.Background()
	ix.pass(ctx)
	store.MustApply(t, closedSession("s-new", t0)...)
	ix.pass(ctx)
	if recs.count("s-new") != 1 || !ix.Index.Has("s-new") {
		t.Fatalf("the new session: %d opens, indexed %v", recs.count("s-new"), ix.Index.Has("s-new"))
	}
	if recs.count("s-bad") != 1 {
		t.Fatalf("the unreadable session was tried %d times in two passes a moment apart", recs.count("s-bad"))
	}
	for range 40 {
		clock = clock.Add(time.Minute)
		ix.pass(ctx)
	}
	if n := recs.count("s-bad"); n != maxAttempts {
		t.Fatalf("the unreadable session was tried %d times in 40 minutes, want %d", n, maxAttempts)
	}
	if !ix.Index.Has("s-bad") {
		t.Fatal("after its last attempt the session is not indexed (without its recording)")
	}
	for range 10 {
		clock = clock.Add(time.Hour)
		ix.pass(ctx)
	}
	if recs.count("s-bad") != maxAttempts || recs.count("s-new") != 1 {
		t.Fatalf("later passes opened recordings again: %v", recs.opens)
	}
}

// Every recording of a session is indexed, and a hit in a later one names
// it.
func TestIndexerEveryRecording(t *testing.T) {
	store := raftstoretest.New(t)
	store.MustApply(t, closedSession("s-1", t0)...)
	store.MustApply(t, holder("s-1", "s-1"), holder("s-1-2", "s-1"))
	recs := &namedRecs{casts: map[string]string{"s-1": cast([2]any{1.0, "first channel\r\n"}), "s-1-2": cast([2]any{2.5, "second channel marker\r\n"})},
		opens: map[string]int{}}
	clock := t0
	ix := newTestIndexer(t, store, recs, &clock)
	ix.pass(context.Background())
	hits, err := ix.Index.Search("second channel marker", Filter{}, 10)
	if err != nil || len(hits) != 1 {
		t.Fatalf("hits %v, %v", hits, err)
	}
	ix.Index.Locate(&hits[0], "second channel marker")
	if hits[0].Recording != "s-1-2" || hits[0].Offset != 2.5 || !hits[0].InOutput {
		t.Fatalf("hit %+v", hits[0])
	}
}

// The index outlives no recording: a session whose last copy retention
// deleted leaves it, as does one older than recording.retention.max_age.
func TestIndexerFollowsRetention(t *testing.T) {
	store := raftstoretest.New(t)
	store.MustApply(t, closedSession("s-1", t0)...)
	store.MustApply(t, holder("s-1", "s-1"))
	store.MustApply(t, closedSession("s-old", t0.Add(-48*time.Hour))...)
	recs := &namedRecs{casts: map[string]string{"s-1": cast([2]any{1.0, "secret output\r\n"}), "s-old": cast([2]any{1.0, "secret output\r\n"})},
		opens: map[string]int{}}
	clock := t0.Add(time.Minute)
	ix := newTestIndexer(t, store, recs, &clock)
	ix.MaxAge = 24 * time.Hour
	ctx := context.Background()
	ix.pass(ctx)
	if !ix.Index.Has("s-1") || ix.Index.Has("s-old") || recs.count("s-old") != 0 {
		t.Fatalf("s-1 indexed %v; s-old (past max_age) indexed %v, opened %d times", ix.Index.Has("s-1"), ix.Index.Has("s-old"), recs.count("s-old"))
	}
	store.MustApply(t, &raftstore.RecordingHolderDelete{Name: "s-1", Node: "n1"},
		&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: clock, Type: replica.EventRecordingDelete, Actor: "node:n1",
			Fields: map[string]string{"session": "s-1", "recording": "s-1", "node": "n1", "reason": "age"}}}})
	ix.pass(ctx)
	if ix.Index.Has("s-1") {
		t.Fatal("the session is still indexed after its last copy was deleted")
	}
	if hits, _ := ix.Index.Search("secret output", Filter{}, 10); len(hits) != 0 {
		t.Fatalf("hits %v", hits)
	}
	ix.pass(ctx)
	if ix.Index.Has("s-1") || recs.count("s-1") != 1 {
		t.Fatalf("the session was indexed again: %d opens", recs.count("s-1"))
	}

	t.Run("max-age", func(t *testing.T) {
		recs.mu.Lock()
		recs.casts["s-2"] = cast([2]any{1.0, "more output\r\n"})
		recs.mu.Unlock()
		store.MustApply(t, closedSession("s-2", clock)...)
		ix.pass(ctx)
		if !ix.Index.Has("s-2") {
			t.Fatal("s-2 not indexed")
		}
		clock = clock.Add(25 * time.Hour)
		ix.pass(ctx)
		if ix.Index.Has("s-2") {
			t.Fatal("s-2 is still indexed past max_age")
		}
	})
}

// A search reads no session's lines for the hit list, and locating a hit
// reads its lines a line at a time: a few sessions of megabytes of output
// (of characters JSON escapes) cost little memory.
func TestSearchMemoryBounded(t *testing.T) {
	idx, err := OpenIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	const sessions, lines = 4, 20_000
	var docs []Doc
	for i := range sessions {
		d := Doc{Session: "s-" + string(rune('a'+i)), User: "ann", Start: t0.Add(time.Duration(i) * time.Minute)}
		for l := range lines {
			d.Lines = append(d.Lines, Line{T: float64(l), Text: strings.Repeat("<a href=x>&</a> ", 8)})
		}
		d.Lines = append(d.Lines, Line{T: lines, Text: "needle phrase here"})
		docs = append(docs, d)
	}
	if err := idx.AddBatch(docs); err != nil {
		t.Fatal(err)
	}
	docs = nil
	alloc := func(f func()) uint64 {
		runtime.GC()
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	var hits []Hit
	n := alloc(func() { hits, err = idx.Search("needle phrase", Filter{}, 1000) })
	if err != nil || len(hits) != sessions {
		t.Fatalf("%d hits, %v", len(hits), err)
	}
	if n > 4<<20 {
		t.Fatalf("a search of %d sessions of ~2.5 MB of output each allocated %d MB", sessions, n>>20)
	}
	n = alloc(func() { idx.Locate(&hits[0], "needle phrase") })
	if hits[0].Offset != lines || n > 32<<20 {
		t.Fatalf("locating one hit allocated %d MB (offset %v)", n>>20, hits[0].Offset)
	}
}
