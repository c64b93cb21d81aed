package auditexport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// storeAuditor writes audit events straight into the store, as the node's
// writer does through raft.
type storeAuditor struct {
	t     testing.TB
	store *raftstoretest.Store
}

func (a storeAuditor) Record(typ, actor string, fields map[string]string) {
	if _, err := a.store.Apply(context.Background(), &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{
		{Time: time.Now().UTC(), Type: typ, Actor: actor, Fields: fields}}}); err != nil {
		a.t.Errorf("audit %s: %v", typ, err)
	}
}

// appendEvents writes n events (batches of up to 1000), actors with
// characters syslog and JSON must escape.
func appendEvents(t testing.TB, s *raftstoretest.Store, n int) {
	t.Helper()
	for n > 0 {
		k := min(n, 1000)
		in := make([]raftstore.AuditEventInput, k)
		for i := range in {
			in[i] = raftstore.AuditEventInput{Time: time.Now().UTC(), Type: "test.event", Actor: `al"ice]\`,
				Fields: map[string]string{"i": fmt.Sprint(i), "text": "é\n"}}
		}
		s.MustApply(t, &raftstore.AuditAppend{Events: in})
		n -= k
	}
}

func head(t testing.TB, s *raftstoretest.Store) uint64 {
	_, e, err := s.State().AuditLast(nil)
	if err != nil || e == nil {
		t.Fatalf("head: %v %v", e, err)
	}
	return e.Seq
}

// waitUntil checks cond every few milliseconds until it holds.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startExporter runs an exporter of targets over s until the test ends or
// the returned stop is called.
func startExporter(t testing.TB, s *raftstoretest.Store, m *Metrics, targets ...Target) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	e := New(Config{Store: s, Auditor: storeAuditor{t, s}, Targets: targets, NodeID: "n1", Metrics: m,
		BatchSize: 100, RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// checkAll checks that recs hold every event 1..n of the store, each as
// stored (the hash chain verifies across them), and returns how many were
// duplicates.
func checkAll(t testing.TB, s *raftstoretest.Store, recs []Record, n uint64) int {
	t.Helper()
	bySeq := map[uint64]Record{}
	dups := 0
	for _, r := range recs {
		if _, dup := bySeq[r.Seq]; dup {
			dups++
		}
		bySeq[r.Seq] = r
	}
	var chain []*raftstore.AuditEvent
	for seq := uint64(1); seq <= n; seq++ {
		r, ok := bySeq[seq]
		if !ok {
			t.Fatalf("event %d never reached the receiver", seq)
		}
		chain = append(chain, r.Event())
	}
	if err := raftstore.VerifyAuditChain(chain); err != nil {
		t.Fatalf("records as received do not verify: %v", err)
	}
	return dups
}

// TestSinks exports to each kind of sink through its configuration, against
// a real receiver, and checks that every event arrives, as written.
func TestSinks(t *testing.T) {
	cert, caFile := testCert(t)
	const token = "hec-token-3f9a"
	key := []byte("webhook-key-71c2-0123456789abcdef")
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "hec"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_WEBHOOK_KEY", string(key))
	filePath := filepath.Join(t.TempDir(), "audit", "audit.jsonl")

	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) (SinkConfig, func() ([]Record, []string))
	}{
		{"ok/file", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			return SinkConfig{Name: "file", Type: KindFile, Path: filePath, MaxSizeMiB: 1, MaxFiles: 50},
				func() ([]Record, []string) { return readJSONLines(t, filePath, 50), nil }
		}},
		{"ok/syslog-tcp", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			addr, rec := startSyslog(t, nil, false)
			return SinkConfig{Name: "syslog-tcp", Type: KindSyslog, Address: addr}, rec.snapshot
		}},
		{"ok/syslog-tcp-newline", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			addr, rec := startSyslog(t, nil, true)
			return SinkConfig{Name: "syslog-nl", Type: KindSyslog, Address: addr, Framing: "newline"}, rec.snapshot
		}},
		{"ok/syslog-tls", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			addr, rec := startSyslog(t, &cert, false)
			return SinkConfig{Name: "syslog-tls", Type: KindSyslog, Address: addr, TLS: true, CAFile: caFile}, rec.snapshot
		}},
		{"ok/splunk-hec", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			srv, rec := startHEC(t, token)
			return SinkConfig{Name: "splunk", Type: KindHEC, URL: srv.URL, TokenFile: filepath.Join(secrets, "hec"), CAFile: caFileOf(t, srv)}, rec.snapshot
		}},
		{"ok/webhook", func(t *testing.T) (SinkConfig, func() ([]Record, []string)) {
			srv, rec := startWebhook(t, key)
			return SinkConfig{Name: "hook", Type: KindWebhook, URL: srv.URL + "/rampart", HMACKeyEnv: "TEST_WEBHOOK_KEY", CAFile: caFileOf(t, srv)}, rec.snapshot
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := raftstoretest.New(t)
			appendEvents(t, s, 2500)
			cfg, got := tc.cfg(t)
			if p := Problems([]SinkConfig{cfg}); len(p) > 0 {
				t.Fatalf("config refused: %v", p)
			}
			targets, err := Build([]SinkConfig{cfg}, "n1", time.Now)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMetrics(nil)
			startExporter(t, s, m, targets...)
			n := head(t, s)
			waitUntil(t, "the cursor to reach the head", func() bool {
				_, c, _ := s.State().AuditExportCursorOf(nil, cfg.Name)
				return c != nil && c.Seq == n
			})
			// Syslog has no acknowledgement: the cursor moves once the
			// connection took a batch, before the receiver read it.
			var recs []Record
			var problems []string
			waitUntil(t, "the receiver to hold every event", func() bool {
				recs, problems = got()
				return len(recs) >= int(n) || len(problems) > 0
			})
			if len(problems) > 0 {
				t.Fatalf("the receiver found problems: %q", problems)
			}
			if dups := checkAll(t, s, recs, n); dups != 0 {
				t.Errorf("%d duplicates without a restart", dups)
			}
			if v := testutil.ToFloat64(m.Exported.WithLabelValues(cfg.Name)); v != float64(n) {
				t.Errorf("exported metric %v, want %d", v, n)
			}
			if v := testutil.ToFloat64(m.Lag.WithLabelValues(cfg.Name)); v != 0 && v != 100 {
				t.Errorf("lag metric %v", v)
			}
		})
	}
}

// TestFileSinkRotates: the file rotates at its size, keeps max_files
// rotated ones, and what it keeps is the newest events, in order.
func TestFileSinkRotates(t *testing.T) {
	s := raftstoretest.New(t)
	appendEvents(t, s, 400)
	_, evs, _ := s.State().AuditSince(nil, 0, 0)
	path := filepath.Join(t.TempDir(), "a.jsonl")
	f := NewFileSink(path, 10<<10, 3)
	for i := 0; i < len(evs); i += 37 {
		if err := f.Send(context.Background(), evs[i:min(i+37, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for i := 1; i <= 3; i++ {
		st, err := os.Stat(fmt.Sprintf("%s.%d", path, i))
		if err != nil || st.Size() > 10<<10 {
			t.Fatalf("rotated file %d: %v, %v", i, st, err)
		}
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Fatal("more than max_files rotated files kept")
	}
	recs := readJSONLines(t, path, 3)
	for i, r := range recs {
		if r.Seq != recs[0].Seq+uint64(i) {
			t.Fatalf("record %d has seq %d: not contiguous", i, r.Seq)
		}
	}
	if last := recs[len(recs)-1].Seq; last != 400 || recs[0].Seq == 1 {
		t.Fatalf("kept seq %d..%d, want the newest up to 400, the oldest dropped", recs[0].Seq, last)
	}
}

// TestRestartMidStream stops the exporter while it ships, starts a new one
// over the same replicated state, and checks nothing is lost and at most
// one batch is sent twice.
func TestRestartMidStream(t *testing.T) {
	s := raftstoretest.New(t)
	srv, rec := startWebhook(t, []byte(strings.Repeat("k", MinHMACKeyBytes)))
	build := func() []Target {
		targets, err := Build([]SinkConfig{{Name: "hook", Type: KindWebhook, URL: srv.URL, HMACKeyEnv: "TEST_HOOK_KEY", CAFile: caFileOf(t, srv)}}, "n1", time.Now)
		if err != nil {
			t.Fatal(err)
		}
		return targets
	}
	t.Setenv("TEST_HOOK_KEY", strings.Repeat("k", MinHMACKeyBytes))
	appendEvents(t, s, 3000)
	stop := startExporter(t, s, nil, build()...)
	waitUntil(t, "some events shipped", func() bool { r, _ := rec.snapshot(); return len(r) >= 500 })
	stop()
	_, c, _ := s.State().AuditExportCursorOf(nil, "hook")
	if c == nil || c.Seq == 0 || c.Seq >= 3000 {
		t.Fatalf("cursor after the stop: %+v, want one mid-stream", c)
	}
	appendEvents(t, s, 1000)
	startExporter(t, s, nil, build()...)
	n := head(t, s)
	waitUntil(t, "the cursor to reach the head", func() bool {
		_, c, _ := s.State().AuditExportCursorOf(nil, "hook")
		return c != nil && c.Seq == n
	})
	recs, problems := rec.snapshot()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if dups := checkAll(t, s, recs, n); dups > 100 {
		t.Errorf("%d duplicates, more than one batch (100)", dups)
	}
}

// TestOutageAuditedOnce makes a sink fail for many tries, then recover, and
// checks: every event arrives, the failures are counted, and the outage is
// one audit_sink.fail and one audit_sink.recover event.
func TestOutageAuditedOnce(t *testing.T) {
	s := raftstoretest.New(t)
	const token = "tok"
	t.Setenv("TEST_HEC_TOKEN", token)
	srv, rec := startHEC(t, token)
	targets, err := Build([]SinkConfig{{Name: "splunk", Type: KindHEC, URL: srv.URL, TokenEnv: "TEST_HEC_TOKEN", CAFile: caFileOf(t, srv)}}, "n1", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s, 250)
	rec.setFail(true)
	m := NewMetrics(nil)
	startExporter(t, s, m, targets...)
	waitUntil(t, "ten failed tries", func() bool { return testutil.ToFloat64(m.Failures.WithLabelValues("splunk")) >= 10 })
	if v := testutil.ToFloat64(m.Up.WithLabelValues("splunk")); v != 0 {
		t.Errorf("up = %v during the outage", v)
	}
	_, c, _ := s.State().AuditExportCursorOf(nil, "splunk")
	if c == nil || c.FailingSince.IsZero() || !strings.Contains(c.LastError, "503") || strings.Contains(c.LastError, token) {
		t.Errorf("sink state during the outage: %+v", c)
	}
	rec.setFail(false)
	waitUntil(t, "recovery", func() bool {
		_, c, _ := s.State().AuditExportCursorOf(nil, "splunk")
		_, h, _ := s.State().AuditLast(nil)
		return c != nil && c.FailingSince.IsZero() && c.Seq == h.Seq
	})
	_, events, _ := s.State().Audit(nil)
	var fails, recovers []*raftstore.AuditEvent
	for _, e := range events {
		switch e.Type {
		case EventAuditSinkFail:
			fails = append(fails, e)
		case EventAuditSinkRecover:
			recovers = append(recovers, e)
		}
	}
	if len(fails) != 1 || len(recovers) != 1 {
		t.Fatalf("%d fail and %d recover events, want one each", len(fails), len(recovers))
	}
	if f := fails[0].Fields; f["sink"] != "splunk" || f["sink_type"] != KindHEC || f["seq"] != "1" || !strings.Contains(f["error"], "503") {
		t.Errorf("fail event fields %v", f)
	}
	if f := recovers[0].Fields; f["failed_tries"] == "" || f["failed_tries"] == "0" || f["outage_seconds"] == "" {
		t.Errorf("recover event fields %v", f)
	}
	recs, _ := rec.snapshot()
	checkAll(t, s, recs, head(t, s))
	if v := testutil.ToFloat64(m.Up.WithLabelValues("splunk")); v != 1 {
		t.Errorf("up = %v after recovery", v)
	}
}

// TestOnlyTheLeaderExports: a follower sends nothing; the node that becomes
// leader starts at the cursor, and one that stops leading stops sending.
func TestOnlyTheLeaderExports(t *testing.T) {
	s := raftstoretest.New(t)
	s.SetLeader(false)
	path := filepath.Join(t.TempDir(), "a.jsonl")
	appendEvents(t, s, 300)
	s.MustApply(t, &raftstore.AuditExportCursorSet{Sink: "f", Seq: 120, Node: "n0", At: time.Now()})
	m := NewMetrics(nil)
	startExporter(t, s, m, Target{Name: "f", Kind: KindFile, Sink: NewFileSink(path, 1<<30, 1)})
	// A follower polls leadership every second: give it two polls.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			t.Fatal("a follower exported")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.SetLeader(true)
	waitUntil(t, "the leader to export", func() bool {
		_, c, _ := s.State().AuditExportCursorOf(nil, "f")
		return c.Seq == 300
	})
	recs := readJSONLines(t, path, 0)
	if len(recs) != 180 || recs[0].Seq != 121 {
		t.Fatalf("exported %d records from seq %d, want 180 from 121 (the cursor)", len(recs), recs[0].Seq)
	}
	s.SetLeader(false)
	waitUntil(t, "the exporter to stand down", func() bool { return testutil.ToFloat64(m.Active.WithLabelValues("f")) == 0 })
	appendEvents(t, s, 50)
	time.Sleep(1500 * time.Millisecond) // nothing to wait on: proving an absence
	if recs := readJSONLines(t, path, 0); len(recs) != 180 {
		t.Fatalf("a deposed leader exported %d more", len(recs)-180)
	}
}

// TestFileSinkCutLine: a file left with half a line (a node killed mid-write)
// is cut back to whole lines before the next write.
func TestFileSinkCutLine(t *testing.T) {
	s := raftstoretest.New(t)
	appendEvents(t, s, 3)
	_, evs, _ := s.State().AuditSince(nil, 0, 0)
	path := filepath.Join(t.TempDir(), "a.jsonl")
	line := string(appendJSON(nil, evs[0])) + "\n"
	if err := os.WriteFile(path, []byte(line+`{"seq":2,"ti`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := NewFileSink(path, 1<<30, 1)
	if err := f.Send(context.Background(), evs[1:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	recs := readJSONLines(t, path, 0)
	if len(recs) != 3 || recs[1].Seq != 2 {
		t.Fatalf("records %+v", recs)
	}
}
