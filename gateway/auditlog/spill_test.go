package auditlog

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/raftstore"
)

// testSpillKey authenticates the spill's lines in tests.
var testSpillKey = []byte("0123456789abcdef0123456789abcdef")

// stalledStore is raft without a quorum: Apply blocks until release is
// closed (or the caller gives up), then takes every batch.
type stalledStore struct {
	release chan struct{}
	mu      sync.Mutex
	events  []raftstore.AuditEventInput
	calls   int
}

func newStalledStore() *stalledStore { return &stalledStore{release: make(chan struct{})} }

func (s *stalledStore) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, cmd.(*raftstore.AuditAppend).Events...)
	return &raftstore.Result{}, nil
}

func (s *stalledStore) taken() []raftstore.AuditEventInput {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]raftstore.AuditEventInput(nil), s.events...)
}

func (s *stalledStore) tried() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls > 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 20s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// wantInOrder checks events are n=0..want-1, each once, in order.
func wantInOrder(t *testing.T, evs []raftstore.AuditEventInput, want int) {
	t.Helper()
	if len(evs) != want {
		t.Fatalf("%d events written, want %d", len(evs), want)
	}
	for i, ev := range evs {
		if ev.Fields["n"] != strconv.Itoa(i) {
			t.Fatalf("event %d is n=%s: order lost or an event missing or doubled", i, ev.Fields["n"])
		}
	}
}

func (a *Writer) isFull() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.full
}

func (a *Writer) isSpilling() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spilling
}

// Raft stalls: the memory queue fills, the rest goes to the spill without
// holding any caller back, and once raft takes writes again every event
// is in the log once, in the order recorded; the metrics say what happened.
func TestWriterStalledRaftSpills(t *testing.T) {
	store := newStalledStore()
	var log syncBuffer
	w := New(store, slog.New(slog.NewTextHandler(&log, nil)))
	if err := w.SetSpill(t.TempDir(), 64<<20, testSpillKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go w.Run(ctx)

	total := queueSize + maxBatch + 1500
	w.Record("login.accept", "alice", map[string]string{"n": "0"})
	waitFor(t, "the writer is stuck in Apply", store.tried)
	for i := 1; i < total; i++ {
		w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
	}
	// One event in flight, a full memory queue, the rest on disk.
	spilled := total - 1 - queueSize
	if got := testutil.ToFloat64(w.metrics.Spilled); got != float64(spilled) {
		t.Fatalf("rampart_audit_events_spilled_total = %v, want %d", got, spilled)
	}
	if got := testutil.ToFloat64(w.metrics.SpillEvents); got != float64(spilled) {
		t.Fatalf("rampart_audit_spill_events = %v, want %d", got, spilled)
	}
	if testutil.ToFloat64(w.metrics.SpillBytes) <= 0 {
		t.Fatal("rampart_audit_spill_bytes is 0 with events on disk")
	}
	if !bytes.Contains(log.Bytes(), []byte("events go to the spill on disk")) {
		t.Fatalf("the spill is not logged:\n%s", log.Bytes())
	}

	close(store.release)
	waitFor(t, "every event is written", func() bool { return len(store.taken()) == total })
	wantInOrder(t, store.taken(), total)
	waitFor(t, "the writer leaves the spill", func() bool { return !w.isSpilling() })
	if got := testutil.ToFloat64(w.metrics.SpillEvents); got != 0 {
		t.Fatalf("rampart_audit_spill_events = %v after the replay", got)
	}
	if got := testutil.ToFloat64(w.metrics.BackpressureSeconds); got != 0 {
		t.Fatalf("callers waited %vs with room on disk", got)
	}
	// Back to the memory queue: a new event is written after the others.
	w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(total)})
	waitFor(t, "the next event is written", func() bool { return len(store.taken()) == total+1 })
	wantInOrder(t, store.taken(), total+1)
	if info, err := os.Stat(filepath.Join(w.spill.dir, spillQueueFile)); err != nil || info.Size() != 0 {
		t.Fatalf("spill file after the replay: %v %v", info, err)
	}
}

// When the spill is full too, the caller waits (backpressure) and nothing
// is dropped; it goes on as soon as raft takes writes again.
func TestWriterSpillFullHoldsCallers(t *testing.T) {
	store := newStalledStore()
	var log syncBuffer
	w := New(store, slog.New(slog.NewTextHandler(&log, nil)))
	// Room for a few dozen events on disk.
	if err := w.SetSpill(t.TempDir(), 4096, testSpillKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go w.Run(ctx)

	total := queueSize + 200
	w.Record("login.accept", "alice", map[string]string{"n": "0"})
	waitFor(t, "the writer is stuck in Apply", store.tried)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for i := 1; i < total; i++ {
			w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
		}
	}()
	waitFor(t, "a caller waits for room", w.isFull)
	select {
	case <-recorded:
		t.Fatal("every event was recorded with both queues full")
	default:
	}
	if !bytes.Contains(log.Bytes(), []byte("callers wait until the cluster takes events again")) {
		t.Fatalf("the backpressure is not logged:\n%s", log.Bytes())
	}
	close(store.release)
	<-recorded
	waitFor(t, "every event is written", func() bool { return len(store.taken()) == total })
	wantInOrder(t, store.taken(), total)
	if testutil.ToFloat64(w.metrics.BackpressureSeconds) <= 0 {
		t.Fatal("rampart_audit_backpressure_seconds_total did not move")
	}
	if got := testutil.ToFloat64(w.metrics.Dropped.WithLabelValues("not_replicated")); got != 0 {
		t.Fatalf("%v events dropped", got)
	}
}

// Without a spill, a full queue holds the caller back too.
func TestWriterNoSpillHoldsCallers(t *testing.T) {
	store := newStalledStore()
	w := New(store, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go w.Run(ctx)
	w.Record("login.accept", "alice", map[string]string{"n": "0"})
	waitFor(t, "the writer is stuck in Apply", store.tried)
	total := queueSize + 10
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for i := 1; i < total; i++ {
			w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
		}
	}()
	waitFor(t, "a caller waits for room", w.isFull)
	close(store.release)
	<-recorded
	waitFor(t, "every event is written", func() bool { return len(store.taken()) == total })
	wantInOrder(t, store.taken(), total)
}

// A node that stops while the cluster is gone keeps what it could not
// write on disk, older events first; the next start writes them before
// anything new.
func TestWriterSpillSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	gone := &fakeStore{failures: -1, calls: make(chan struct{}, 100)}
	w := New(gone, slog.New(slog.DiscardHandler))
	w.after = func(time.Duration) <-chan time.Time { return nil }
	w.stopTimeout = time.Millisecond
	if err := w.SetSpill(dir, 64<<20, testSpillKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)
	for i := range 3 {
		w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
	}
	<-gone.calls
	cancel()
	<-w.Done()
	// Recorded after the stop (a connection closing late): kept too.
	w.Record("login.accept", "alice", map[string]string{"n": "3"})
	if got := testutil.ToFloat64(w.metrics.Dropped.WithLabelValues("not_replicated")); got != 0 {
		t.Fatalf("%v events dropped", got)
	}
	if err := w.spill.close(); err != nil {
		t.Fatal(err)
	}

	store := &fakeStore{}
	w2 := New(store, slog.New(slog.DiscardHandler))
	if err := w2.SetSpill(dir, 64<<20, testSpillKey); err != nil {
		t.Fatal(err)
	}
	if w2.spill.count != 4 {
		t.Fatalf("%d events on disk, want 4", w2.spill.count)
	}
	w2.Record("login.accept", "alice", map[string]string{"n": "4"})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer func() { cancel2(); <-w2.Done() }()
	go w2.Run(ctx2)
	var all []raftstore.AuditEventInput
	waitFor(t, "every event is written", func() bool {
		all = nil
		for _, b := range store.taken() {
			all = append(all, b...)
		}
		return len(all) == 5
	})
	wantInOrder(t, all, 5)
}

// A line cut short by a crash is dropped from the queue on open (its
// caller never returned); whole lines and the offset survive.
func TestSpillTornLine(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpill(dir, 1<<20, testSpillKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev := raftstore.AuditEventInput{Time: t0, Type: "login.accept", Fields: map[string]string{"n": strconv.Itoa(i)}}
		if err := s.append(&ev, false); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.peek(2, t0)
	if err != nil || len(r.events) != 1 {
		t.Fatal(r, err)
	}
	if err := s.commit(r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.f.WriteAt([]byte(`{"Time":"2026-`), s.size); err != nil {
		t.Fatal(err)
	}
	s.close()
	s, err = openSpill(dir, 1<<20, testSpillKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	r, err = s.peek(10, t0)
	if err != nil {
		t.Fatal(err)
	}
	evs := r.events
	if len(evs) != 2 || evs[0].Fields["n"] != "1" || evs[1].Fields["n"] != "2" || s.count != 2 {
		t.Fatalf("after reopen: %+v count %d err %v", evs, s.count, err)
	}
}
