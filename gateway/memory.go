package gateway

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// applyMemory sets the garbage collector from the memory section, unless
// GOGC or GOMEMLIMIT in the environment already did (the operator's
// explicit choice wins, as for any Go program). With a headroom floor it
// keeps adjusting GOGC until ctx ends (see gcPercentFor).
func applyMemory(ctx context.Context, m Memory, logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("GOMEMLIMIT is set in the environment; memory.soft_limit_mib is not applied", "GOMEMLIMIT", v)
	} else if m.SoftLimitMiB > 0 {
		debug.SetMemoryLimit(int64(m.SoftLimitMiB) << 20)
	}
	if v := os.Getenv("GOGC"); v != "" {
		logger.Info("GOGC is set in the environment; memory.gc_percent is not applied", "GOGC", v)
		return
	}
	debug.SetGCPercent(m.GCPercent)
	if m.GCMinHeadroomMiB > 0 && tunerStarted.CompareAndSwap(false, true) {
		go func() {
			defer tunerStarted.Store(false)
			tuneGC(ctx, m.GCPercent, uint64(m.GCMinHeadroomMiB)<<20, time.Second)
		}()
	}
}

// tunerStarted: GOGC is the process's, so one tuner at a time (tests run
// several nodes in one process).
var tunerStarted atomic.Bool

// gcPercentFor is the GOGC that lets the heap grow by percent of what the
// collector counts as live (live heap, goroutine stacks and globals: base),
// but by at least floor bytes, and by at most 10× base.
//
// Why: a node's memory is mostly idle sessions, half of it stacks, so a low
// percent is what keeps 10,000 of them small. A node with few sessions and
// little live memory, though, would then collect every few megabytes while
// streaming a file (x/crypto allocates every packet it reads), which costs
// a quarter of upload throughput; the floor spaces those collections out for
// the price of at most floor bytes.
func gcPercentFor(base uint64, percent int, floor uint64) int {
	if base == 0 {
		return 1000
	}
	need := (floor*100 + base - 1) / base
	return int(min(max(uint64(percent), need), 1000))
}

// tuneGC sets GOGC from gcPercentFor every interval until ctx ends, when it
// has moved by more than a tenth.
func tuneGC(ctx context.Context, percent int, floor uint64, every time.Duration) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	current := percent
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		var v [3]uint64
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		want := gcPercentFor(v[0]+v[1]+v[2], percent, floor)
		// Move by more than a tenth, or back to percent exactly.
		if want*10 > current*11 || want*11 < current*10 || want == percent && current != percent {
			debug.SetGCPercent(want)
			current = want
		}
	}
}
