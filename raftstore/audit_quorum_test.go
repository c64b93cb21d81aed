package raftstore_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/gateway/auditlog"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The audit writer on real raft: a node records events while the cluster
// has lost its quorum (two of three nodes stopped); they wait in the
// node's spill; once the two come back every event is in the replicated
// log, in the order recorded. A batch whose answer was lost with the
// leader may be in the log twice (the writer retries it): each copy has
// its own seq, the first is where it belongs, and nothing is missing.
func TestAuditWriterSurvivesQuorumLoss(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	leader := c.Leader()
	node := c.Followers()[0]
	var others []*raftstore.Store
	for _, s := range append(c.Followers(), leader) {
		if s != node {
			others = append(others, s)
		}
	}

	reg := prometheus.NewRegistry()
	w := auditlog.New(node, slog.New(slog.DiscardHandler))
	m := auditlog.NewMetrics(reg)
	w.SetMetrics(m)
	if err := w.SetSpill(t.TempDir(), 64<<20, []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go w.Run(ctx)

	record := func(from, to int) {
		for i := from; i < to; i++ {
			w.Record("login.accept", "alice", map[string]string{"n": strconv.Itoa(i)})
		}
	}
	waitLog := func(what string, want int) []*raftstore.AuditEvent {
		t.Helper()
		var evs []*raftstore.AuditEvent
		deadline := time.Now().Add(90 * time.Second)
		for {
			_, evs, _ = node.State().Audit(nil)
			if len(firstCopies(evs)) >= want {
				return evs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d distinct events in the log, want %d", what, len(firstCopies(evs)), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	record(0, 100)
	waitLog("with a quorum", 100)

	for _, s := range others {
		c.Stop(s)
	}
	// No quorum: Record still returns at once; what the memory queue
	// cannot hold waits on disk.
	start := time.Now()
	total := 100 + 4096 + 2000
	record(100, total)
	t.Logf("recorded %d events without a quorum in %s", total-100, time.Since(start).Round(time.Millisecond))
	if got := testutil.ToFloat64(m.SpillEvents); got == 0 {
		t.Fatal("nothing in the spill with the quorum lost")
	}
	if got := testutil.ToFloat64(m.BackpressureSeconds); got != 0 {
		t.Fatalf("callers waited %vs with room on disk", got)
	}

	healed := time.Now()
	for _, s := range others {
		c.Restart(s)
	}
	evs := waitLog("after the quorum healed", total)
	t.Logf("all %d events in the log %s after the quorum came back", total, time.Since(healed).Round(time.Millisecond))

	firsts := firstCopies(evs)
	for i, e := range firsts {
		if e.Fields["n"] != strconv.Itoa(i) {
			t.Fatalf("event %d of the log is n=%s: order lost", i, e.Fields["n"])
		}
	}
	if d := len(evs) - len(firsts); d > 0 {
		t.Logf("%d events written twice (a batch retried after its answer was lost)", d)
	}
	if err := raftstore.VerifyAuditChain(evs); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(m.SpillEvents) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the spill was not emptied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("not_replicated")); got != 0 {
		t.Fatalf("%v events dropped", got)
	}
}

// firstCopies keeps the first copy of each event of the writer's (by its
// "n"), in log order.
func firstCopies(evs []*raftstore.AuditEvent) []*raftstore.AuditEvent {
	seen := map[string]bool{}
	var out []*raftstore.AuditEvent
	for _, e := range evs {
		n, ok := e.Fields["n"]
		if !ok || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, e)
	}
	return out
}
