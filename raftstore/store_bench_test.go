package raftstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

// The benchmarks run a three-node cluster over mutual TLS on loopback, each
// node's raft log in bolt on the local disk, so a write costs a leader fsync,
// a round trip and a follower fsync. They use b.Loop, which runs the function
// once, so the cluster is started once per benchmark.

// benchAudit is an AuditAppend of n small events.
func benchAudit(n int) *AuditAppend {
	evs := make([]AuditEventInput, n)
	for i := range evs {
		evs[i] = AuditEventInput{Time: testNow, Type: "bench.write", Actor: "bench", Fields: map[string]string{"i": fmt.Sprint(i)}}
	}
	return &AuditAppend{Events: evs}
}

func BenchmarkReplicatedWriteSingle(b *testing.B) {
	leader := newTestCluster(b, 3).leader()
	cmd := benchAudit(1)
	ctx := b.Context()
	writes := 0
	start := time.Now()
	for b.Loop() {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	b.ReportMetric(float64(writes)/time.Since(start).Seconds(), "writes/s")
}

func BenchmarkReplicatedWriteConcurrent(b *testing.B) {
	const writers = 64
	leader := newTestCluster(b, 3).leader()
	cmd := benchAudit(1)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	// b.Loop hands out one write per iteration to a pool of writers, so the
	// cluster always has up to 64 writes in flight (raft batches them).
	work := make(chan struct{})
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range work {
				if _, err := leader.Apply(ctx, cmd); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	writes := 0
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
		writes++
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(writes)/elapsed.Seconds(), "writes/s")
}

func BenchmarkReplicatedAuditBatched(b *testing.B) {
	const batch = 100
	leader := newTestCluster(b, 3).leader()
	cmd := benchAudit(batch)
	ctx := b.Context()
	writes := 0
	start := time.Now()
	for b.Loop() {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(writes*batch)/elapsed, "events/s")
	b.ReportMetric(float64(writes)/elapsed, "writes/s")
}

// BenchmarkBlockingFanout10k parks 10,000 blocking queries on the audit table
// of one follower, makes one write through the leader, and measures how long
// until every query has returned, and the memory the parked queries hold.
func BenchmarkBlockingFanout10k(b *testing.B) {
	const watchers = 10000
	c := newTestCluster(b, 3)
	leader, node := c.leader(), c.followers()[0]
	cmd := benchAudit(1)
	ctx := b.Context()
	var totalWake time.Duration
	var heapInuse, heapAlloc float64
	rounds := 0
	for b.Loop() {
		minIndex := node.State().MaxIndex(tableAudit)
		before := memStats()
		var parked atomic.Int64
		errs := make(chan error, watchers)
		var wg sync.WaitGroup
		for range watchers {
			wg.Go(func() {
				first := true
				idx, err := BlockingQuery(ctx, node.FSM(), minIndex, time.Minute, func(ws memdb.WatchSet, s *State) (uint64, error) {
					if first {
						first = false
						parked.Add(1)
					}
					idx, _, err := s.AuditLast(ws)
					return idx, err
				})
				if err == nil && idx <= minIndex {
					err = fmt.Errorf("returned index %d, not past %d", idx, minIndex)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		// A query counted here has registered its watches: a write from now
		// on wakes it, even if it has not reached its select yet.
		eventually(b, "every watcher parked", func() error {
			if n := parked.Load(); n < watchers {
				return fmt.Errorf("%d of %d parked", n, watchers)
			}
			return nil
		})
		after := memStats()
		start := time.Now()
		if _, err := leader.Apply(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		totalWake += time.Since(start)
		close(errs)
		if err := errors.Join(collect(errs)...); err != nil {
			b.Fatal(err)
		}
		heapInuse += float64(int64(after.HeapInuse) - int64(before.HeapInuse))
		heapAlloc += float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		rounds++
	}
	b.ReportMetric(totalWake.Seconds()*1000/float64(rounds), "ms-until-all-returned")
	// Goroutine stacks (2 KiB or more each) come on top: they are not heap,
	// and StackInuse keeps freed stacks cached, so it does not measure them.
	b.ReportMetric(heapInuse/float64(rounds*watchers), "heapinuse-B/watcher")
	b.ReportMetric(heapAlloc/float64(rounds*watchers), "heapalloc-B/watcher")
}

// memStats collects garbage first, so that the heap counts only live memory.
func memStats() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}
