package auditlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/raftstore"
)

// fakeStore takes AuditAppend batches, failing the first failures calls
// (all of them when it is negative). Each call is sent on calls, and each
// batch taken on took, when they are not nil.
type fakeStore struct {
	mu       sync.Mutex
	failures int
	batches  [][]raftstore.AuditEventInput
	calls    chan struct{}
	took     chan struct{}
}

func (s *fakeStore) Apply(_ context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	if s.calls != nil {
		s.calls <- struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures != 0 {
		s.failures--
		return nil, errors.New("no leader")
	}
	s.batches = append(s.batches, cmd.(*raftstore.AuditAppend).Events)
	if s.took != nil {
		s.took <- struct{}{}
	}
	return &raftstore.Result{}, nil
}

func (s *fakeStore) taken() [][]raftstore.AuditEventInput {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))

// newTestWriter is a writer into store on a fixed clock whose retries wait
// for nothing; the waits asked for are noted.
func newTestWriter(store Store, log io.Writer) (*Writer, func() []time.Duration) {
	w := New(store, slog.New(slog.NewTextHandler(log, nil)))
	w.now = func() time.Time { return t0 }
	var mu sync.Mutex
	var waits []time.Duration
	now := make(chan time.Time)
	close(now)
	w.after = func(d time.Duration) <-chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return now
	}
	return w, func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

// Events queued before the writer runs go out in batches of at most
// maxBatch, in order, each stamped with the clock in UTC; a batch the
// cluster refuses is retried, with a doubling wait capped at 5 s, until it
// is taken.
func TestWriter(t *testing.T) {
	tests := []struct {
		name        string
		events      int
		failures    int
		wantBatches []int // sizes
		wantWaits   []time.Duration
	}{
		{name: "ok/one-batch", events: 3, wantBatches: []int{3}},
		{name: "ok/batches-capped", events: 1200, wantBatches: []int{500, 500, 200}},
		{name: "ok/retried-until-taken", events: 2, failures: 2, wantBatches: []int{2},
			wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{name: "ok/retry-wait-capped", events: 1, failures: 8, wantBatches: []int{1},
			wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
				1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{failures: tc.failures, took: make(chan struct{}, len(tc.wantBatches))}
			var log syncBuffer
			w, waits := newTestWriter(store, &log)
			for i := range tc.events {
				w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
			}
			ctx, cancel := context.WithCancel(context.Background())
			go w.Run(ctx)
			for range tc.wantBatches {
				<-store.took
			}
			cancel()
			<-w.Done()

			batches := store.taken()
			var sizes []int
			next := 0
			for _, b := range batches {
				sizes = append(sizes, len(b))
				for _, ev := range b {
					if !ev.Time.Equal(t0) || ev.Time.Location() != time.UTC {
						t.Fatalf("event time %v, want %v in UTC", ev.Time, t0)
					}
					if ev.Type != "login.accept" || ev.Actor != "alice" || ev.Fields["n"] != strconv.Itoa(next) {
						t.Fatalf("event %+v, want login %d of alice", ev, next)
					}
					next++
				}
			}
			if next != tc.events {
				t.Fatalf("%d events written, want %d", next, tc.events)
			}
			if !equal(sizes, tc.wantBatches) {
				t.Fatalf("batches of %v, want %v", sizes, tc.wantBatches)
			}
			if got := waits(); !equal(got, tc.wantWaits) {
				t.Fatalf("waited %v between tries, want %v", got, tc.wantWaits)
			}
			written := 0
			for _, n := range sizes {
				written += n
			}
			if got := testutil.ToFloat64(w.metrics.Written); got != float64(written) {
				t.Fatalf("rampart_audit_events_written_total = %v, want %d", got, written)
			}
		})
	}
}

// A writer without a spill that stops while the cluster refuses its batch
// logs the events instead of losing them silently, and Run returns.
func TestWriterStopsWithClusterGone(t *testing.T) {
	store := &fakeStore{failures: -1, calls: make(chan struct{}, 1)}
	var log syncBuffer
	w := New(store, slog.New(slog.NewTextHandler(&log, nil)))
	w.after = func(time.Duration) <-chan time.Time { return nil } // the retry waits for the stop
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)
	w.Record("session.open", "alice", map[string]string{"session": "s-1"})
	<-store.calls // the first try failed
	cancel()
	<-w.Done()
	if !bytes.Contains(log.Bytes(), []byte(`msg="audit event not replicated" type=session.open actor=alice`)) {
		t.Fatalf("log:\n%s", log.Bytes())
	}
	if len(store.taken()) != 0 {
		t.Fatal("a batch was taken")
	}
	if got := testutil.ToFloat64(w.metrics.Dropped.WithLabelValues("not_replicated")); got != 1 {
		t.Fatalf(`rampart_audit_events_dropped_total{reason="not_replicated"} = %v, want 1`, got)
	}
	if got := testutil.ToFloat64(w.metrics.Written); got != 0 {
		t.Fatalf("rampart_audit_events_written_total = %v, want 0", got)
	}
}

// Events still queued when the node stops are written before Run returns.
func TestWriterFlushesOnStop(t *testing.T) {
	store := &fakeStore{}
	var log bytes.Buffer
	w, _ := newTestWriter(store, &log)
	for range 3 {
		w.Record("login.accept", "alice", nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Run(ctx)
	<-w.Done()
	n := 0
	for _, b := range store.taken() {
		n += len(b)
	}
	if n != 3 {
		t.Fatalf("%d events written, want 3", n)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// syncBuffer is a bytes.Buffer the writer's goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
