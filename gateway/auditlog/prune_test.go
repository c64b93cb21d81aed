package auditlog

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

var pruneKey = ed25519.NewKeyFromSeed([]byte(strings.Repeat("p", ed25519.SeedSize)))

// appendAt appends n events an hour apart from start.
func appendAt(t *testing.T, s *raftstoretest.Store, start time.Time, n int) {
	t.Helper()
	evs := make([]raftstore.AuditEventInput, n)
	for i := range evs {
		evs[i] = raftstore.AuditEventInput{Time: start.Add(time.Duration(i) * time.Hour), Type: "login.accept", Actor: "alice",
			Fields: map[string]string{"n": strconv.Itoa(i)}}
	}
	s.MustApply(t, &raftstore.AuditAppend{Events: evs})
}

// The leader prunes by count and by age, whichever keeps less, always
// keeping the newest event; the log verifies from the checkpoint; the
// retention in force is recorded once, and again when it changes.
func TestPruner(t *testing.T) {
	day := 24 * time.Hour
	now := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ret  Retention
		// 48 events, one an hour, the last at now-1h; then the writes
		// Once makes itself (retention, prune).
		wantFirst uint64 // first event kept (0: nothing pruned)
	}{
		{name: "ok/no-bound", ret: Retention{}, wantFirst: 0},
		{name: "ok/by-count", ret: Retention{MaxEvents: 10}, wantFirst: 40},
		{name: "ok/by-age", ret: Retention{MaxAge: day}, wantFirst: 25},
		{name: "ok/age-and-count-keeps-less", ret: Retention{MaxAge: day, MaxEvents: 30}, wantFirst: 25},
		{name: "ok/count-and-age-keeps-less", ret: Retention{MaxAge: day, MaxEvents: 5}, wantFirst: 45},
		// The newest event is 1 h old by the wall clock, but the pruner's
		// clock stops a minute past it: a minute's bound keeps it.
		{name: "ok/clock-stops-past-newest", ret: Retention{MaxAge: time.Minute}, wantFirst: 48},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := raftstoretest.New(t)
			appendAt(t, s, now.Add(-48*time.Hour), 48)
			p := NewPruner(s, pruneKey, tc.ret, "n1", slog.New(slog.DiscardHandler))
			p.now = func() time.Time { return now }
			if err := p.Once(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			st := s.State()
			_, as, _ := st.AuditStateOf(nil)
			r, err := st.VerifyAudit(pruneKey.Public().(ed25519.PublicKey), 100)
			if err != nil {
				t.Fatalf("verify after prune: %v", err)
			}
			_, evs, _ := st.Audit(nil)
			if tc.wantFirst == 0 {
				if as.Checkpoint != nil || evs[0].Seq != 1 {
					t.Fatalf("pruned with no bound: %+v", as.Checkpoint)
				}
				return
			}
			if as.Checkpoint == nil || as.Checkpoint.LastSeq != tc.wantFirst-1 || r.FirstSeq != tc.wantFirst {
				t.Fatalf("checkpoint %+v, first kept %d; want pruned through %d", as.Checkpoint, r.FirstSeq, tc.wantFirst-1)
			}
			// The retention and the prune are both in the log, after the
			// events kept.
			var types []string
			for _, e := range evs {
				if e.Type != "login.accept" {
					types = append(types, e.Type)
				}
			}
			if strings.Join(types, ",") != raftstore.EventAuditRetentionUpdate+","+raftstore.EventAuditPrune {
				t.Fatalf("bookkeeping events %v", types)
			}
			// A second look prunes nothing more and records nothing.
			before := s.Applied()
			if err := p.Once(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			if tc.ret.MaxEvents == 0 && s.Applied() != before {
				t.Fatalf("a second look wrote %d commands", s.Applied()-before)
			}
		})
	}
}

// Nothing an export sink has not taken is pruned: a sink with no cursor
// holds the whole log, one behind holds what it has not delivered.
func TestPrunerWaitsForExportSinks(t *testing.T) {
	now := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		sink      string // the cursor's sink ("": siem, the configured one)
		cursor    uint64 // 0: the sink has none
		wantFirst uint64 // first event kept (0: nothing pruned)
	}{
		{name: "ok/no-cursor-holds-all", cursor: 0, wantFirst: 0},
		{name: "ok/behind-holds-the-rest", cursor: 20, wantFirst: 21},
		{name: "ok/ahead-prunes-by-retention", cursor: 48, wantFirst: 40},
		// A cursor in raft of a sink this node does not configure (another
		// node's, or a removed sink's) holds the log too.
		{name: "ok/unconfigured-cursor-holds", sink: "old-siem", cursor: 20, wantFirst: 21},
		{name: "ok/unconfigured-cursor-ahead", sink: "old-siem", cursor: 48, wantFirst: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := raftstoretest.New(t)
			appendAt(t, s, now.Add(-48*time.Hour), 48)
			if tc.cursor > 0 {
				s.MustApply(t, &raftstore.AuditExportCursorSet{Sink: cmp.Or(tc.sink, "siem"), Seq: tc.cursor, Node: "n1", At: now})
			}
			sinks := []string{"siem"}
			if tc.sink != "" {
				sinks = nil // the cursor's sink is not configured here
			}
			p := NewPruner(s, pruneKey, Retention{MaxEvents: 10, ExportSinks: sinks}, "n1", slog.New(slog.DiscardHandler))
			p.now = func() time.Time { return now }
			if err := p.Once(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			_, as, _ := s.State().AuditStateOf(nil)
			switch {
			case tc.wantFirst == 0 && tc.sink != "" && (as.Checkpoint == nil || as.Checkpoint.LastSeq != 39):
				t.Fatalf("checkpoint %+v; want pruned through 39 (by retention)", as.Checkpoint)
			case tc.wantFirst == 0 && tc.sink == "" && as.Checkpoint != nil:
				t.Fatalf("pruned through %d though the sink took nothing", as.Checkpoint.LastSeq)
			case tc.wantFirst != 0 && (as.Checkpoint == nil || as.Checkpoint.LastSeq != tc.wantFirst-1):
				t.Fatalf("checkpoint %+v; want pruned through %d", as.Checkpoint, tc.wantFirst-1)
			}
		})
	}
}

// A changed retention is recorded (audited) even when nothing is pruned,
// and a follower does nothing.
func TestPrunerRecordsRetention(t *testing.T) {
	s := raftstoretest.New(t)
	appendAt(t, s, time.Now().Add(-time.Hour), 1)
	p := NewPruner(s, pruneKey, Retention{MaxAge: 400 * 24 * time.Hour, Interval: time.Hour}, "n1", slog.New(slog.DiscardHandler))
	if err := p.Once(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	p.ret.MaxEvents = 1000000
	if err := p.Once(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	_, evs, _ := s.State().Audit(nil)
	if len(evs) != 3 || evs[1].Type != raftstore.EventAuditRetentionUpdate || evs[2].Fields["max_events"] != "1000000" ||
		evs[2].Fields["old_max_age"] != "9600h0m0s" || evs[2].Fields["node"] != "n1" {
		t.Fatalf("events %+v", evs)
	}

	s.SetLeader(false)
	looked := make(chan time.Time)
	p.after = func(time.Duration) <-chan time.Time { return looked }
	p.ret.MaxEvents = 5
	before := s.Applied()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	looked <- time.Now()
	looked <- time.Now() // the first look has finished
	cancel()
	<-done
	if s.Applied() != before {
		t.Fatal("a follower wrote")
	}
}

// A leader whose clock jumped ahead prunes by the log's own time: its "now"
// stops a minute past the newest event, so events that are not old stay,
// and its own audit.prune does not move that time on by a year.
func TestPrunerClockAhead(t *testing.T) {
	now := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	s := raftstoretest.New(t)
	appendAt(t, s, now.Add(-48*time.Hour), 48) // the last at now-1h
	p := NewPruner(s, pruneKey, Retention{MaxAge: 24 * time.Hour}, "n1", slog.New(slog.DiscardHandler))
	p.now = func() time.Time { return now.AddDate(1, 0, 0) }
	for range 2 {
		if err := p.Once(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	_, as, _ := s.State().AuditStateOf(nil)
	// Events more than a day older than a minute past the newest (seq 48,
	// now-1h) go: seqs 1..24, not the whole log.
	if as.Checkpoint == nil || as.Checkpoint.LastSeq != 24 {
		t.Fatalf("checkpoint %+v; want pruned through 24", as.Checkpoint)
	}
	_, last, _ := s.State().AuditLast(nil)
	if last.Type != raftstore.EventAuditPrune || last.Time.After(now.Add(-time.Hour+2*clockMargin)) {
		t.Fatalf("the prune's own event %+v", last)
	}
}
