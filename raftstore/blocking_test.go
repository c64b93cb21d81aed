package raftstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

// The FSM hands out the current generation, which is all a StateSource is.
var _ StateSource = (*FSM)(nil)

// waitLimit bounds every wait on a goroutine in these tests; it only runs out
// when the behaviour under test is broken.
const waitLimit = 10 * time.Second

type queryResult struct {
	idx uint64
	err error
}

// blockingRun is a BlockingQuery running in its own goroutine.
type blockingRun struct {
	// calls counts the runs of the query function.
	calls atomic.Int32
	// ran receives after each run of the query function, once what it read is
	// in the watch set: a write made after that wakes the query.
	ran  chan struct{}
	done chan queryResult
}

// startBlocking runs BlockingQuery(ctx, f, minIndex, wait, fn) in a goroutine
// that the test's cleanup waits for.
func startBlocking(t *testing.T, ctx context.Context, f *FSM, minIndex uint64, wait time.Duration, fn QueryFunc) *blockingRun {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	r := &blockingRun{ran: make(chan struct{}, 100), done: make(chan queryResult, 1)}
	go func() {
		idx, err := BlockingQuery(ctx, f, minIndex, wait, func(ws memdb.WatchSet, s *State) (uint64, error) {
			idx, err := fn(ws, s)
			r.calls.Add(1)
			select {
			case r.ran <- struct{}{}:
			default: // nobody is counting runs this far
			}
			return idx, err
		})
		r.done <- queryResult{idx, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case res := <-r.done:
			r.done <- res
		case <-time.After(waitLimit):
			t.Error("blocking query goroutine did not end")
		}
	})
	return r
}

func (r *blockingRun) waitRan(t *testing.T) {
	t.Helper()
	select {
	case <-r.ran:
	case <-time.After(waitLimit):
		t.Fatal("the query function never ran")
	}
}

func (r *blockingRun) result(t *testing.T) queryResult {
	t.Helper()
	select {
	case res := <-r.done:
		r.done <- res // keep it for the cleanup
		return res
	case <-time.After(waitLimit):
		t.Fatal("blocking query did not return")
		return queryResult{}
	}
}

// usersQuery lists users and reports the users table's index.
func usersQuery(seen *atomic.Int32) QueryFunc {
	return func(ws memdb.WatchSet, s *State) (uint64, error) {
		idx, users, err := s.Users(ws)
		if seen != nil {
			seen.Store(int32(len(users)))
		}
		return idx, err
	}
}

// ownIndexQuery watches only the users table's row of the index table.
func ownIndexQuery(ws memdb.WatchSet, s *State) (uint64, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	return maxIndexTxn(tx, ws, tableUsers), nil
}

func addUser(t *testing.T, f *FSM, id string) {
	t.Helper()
	mustApply(t, f, &UserUpsert{User: User{ID: id, Login: id, UnixName: id}, Now: testNow})
}

func TestBlockingQueryReturnsAtOnce(t *testing.T) {
	cases := []struct {
		name     string
		minIndex func(f *FSM) uint64
	}{
		{name: "ok/min-index-0", minIndex: func(*FSM) uint64 { return 0 }},
		{name: "ok/data-newer-than-min-index", minIndex: func(f *FSM) uint64 { return f.State().MaxIndex(tableUsers) - 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			addUser(t, f, "a")
			addUser(t, f, "b")
			r := startBlocking(t, context.Background(), f, tc.minIndex(f), time.Hour, usersQuery(nil))
			res := r.result(t)
			if res.err != nil || res.idx != f.State().MaxIndex(tableUsers) || r.calls.Load() != 1 {
				t.Fatalf("idx %d err %v calls %d", res.idx, res.err, r.calls.Load())
			}
		})
	}
}

func TestBlockingQueryEmptyStateIndexNeverZero(t *testing.T) {
	f := testFSM(t)
	res := startBlocking(t, context.Background(), f, 0, time.Hour, usersQuery(nil)).result(t)
	if res.err != nil || res.idx == 0 {
		t.Fatalf("idx %d err %v; an index of 0 would make the next call return at once", res.idx, res.err)
	}
}

func TestBlockingQueryWakesOnWrite(t *testing.T) {
	f := testFSM(t)
	addUser(t, f, "a")
	minIdx := f.State().MaxIndex(tableUsers)
	var seen atomic.Int32
	r := startBlocking(t, context.Background(), f, minIdx, time.Hour, usersQuery(&seen))
	r.waitRan(t)
	addUser(t, f, "b")
	res := r.result(t)
	if res.err != nil || res.idx <= minIdx || seen.Load() != 2 {
		t.Fatalf("idx %d (min %d) err %v users seen %d", res.idx, minIdx, res.err, seen.Load())
	}
}

func TestBlockingQueryTimesOut(t *testing.T) {
	f := testFSM(t)
	addUser(t, f, "a")
	minIdx := f.State().MaxIndex(tableUsers)
	res := startBlocking(t, context.Background(), f, minIdx, 50*time.Millisecond, usersQuery(nil)).result(t)
	if res.err != nil || res.idx != minIdx {
		t.Fatalf("idx %d err %v, want %d and no error", res.idx, res.err, minIdx)
	}
}

func TestBlockingQueryIgnoresOtherTables(t *testing.T) {
	f := testFSM(t)
	// The users row must exist in the index table: a watch on a missing key
	// is a watch on its neighbourhood, which any insert may wake.
	addUser(t, f, "a")
	minIdx := f.State().MaxIndex(tableUsers)
	r := startBlocking(t, context.Background(), f, minIdx, 300*time.Millisecond, ownIndexQuery)
	r.waitRan(t)
	mustApply(t, f, &SessionOpen{Session: testSession("s1", "a")})
	mustApply(t, f, &AuditAppend{Events: auditInputs(1, "x")})
	res := r.result(t)
	if res.err != nil || res.idx != minIdx {
		t.Fatalf("idx %d err %v, want %d", res.idx, res.err, minIdx)
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("writes to other tables woke the query: %d runs", n)
	}
}

func TestBlockingQueryContextCancel(t *testing.T) {
	f := testFSM(t)
	addUser(t, f, "a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := startBlocking(t, ctx, f, f.State().MaxIndex(tableUsers), time.Hour, usersQuery(nil))
	r.waitRan(t)
	cancel()
	if res := r.result(t); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", res.err)
	}
}

func TestBlockingQueryWakesOnRestore(t *testing.T) {
	// src has more users, written at higher indexes, than f.
	src := testFSM(t)
	for _, id := range []string{"a", "b", "c"} {
		addUser(t, src, id)
	}
	stream := persist(t, src)

	f := testFSM(t)
	addUser(t, f, "a")
	minIdx := f.State().MaxIndex(tableUsers)
	var seen atomic.Int32
	r := startBlocking(t, context.Background(), f, minIdx, time.Hour, usersQuery(&seen))
	r.waitRan(t)
	if err := f.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
		t.Fatal(err)
	}
	res := r.result(t)
	if res.err != nil || res.idx != src.State().MaxIndex(tableUsers) || seen.Load() != 3 {
		t.Fatalf("idx %d err %v users seen %d; want the restored state's index %d and 3 users",
			res.idx, res.err, seen.Load(), src.State().MaxIndex(tableUsers))
	}
}
