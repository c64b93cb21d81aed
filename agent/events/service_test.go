package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServiceRestartsAndOutage runs the tailer and the sender over a log
// file of real sshd lines while the cluster goes away, the agent stops and
// starts again (with logins logged while it was stopped), and an answer is
// lost: the cluster ends up with every login once, in the log's order.
func TestServiceRestartsAndOutage(t *testing.T) {
	raw, err := os.ReadFile("testdata/sshd-e-verbose-pam-true.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	// Cut the log into thirds at connection boundaries ("Connection from").
	var cuts []int
	for i, l := range lines {
		if strings.HasPrefix(l, "Connection from") {
			cuts = append(cuts, i)
		}
	}
	parts := []string{
		strings.Join(lines[:cuts[3]], ""),
		strings.Join(lines[cuts[3]:cuts[6]], ""),
		strings.Join(lines[cuts[6]:], ""),
	}
	want := feedFile(t, "testdata/sshd-e-verbose-pam-true.log")

	dir := t.TempDir()
	logPath := filepath.Join(dir, "sshd.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cluster := &fakeCluster{}
	spoolDir := filepath.Join(dir, "spool")
	start := func() *Service {
		s, err := Start(context.Background(), Config{LoginLog: logPath, SpoolDir: spoolDir, Poster: cluster, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the tailer to record where it starts", func() bool {
			st, err := s.spool.State()
			return err == nil && st.HasPosition
		})
		return s
	}
	recorded := func(n int) func() bool {
		return func() bool { return len(cluster.users()) == n }
	}
	pending := func(s *Service, n int) func() bool {
		return func() bool {
			st, err := s.spool.State()
			return err == nil && st.Pending == n
		}
	}
	// How many events each part completes (a connection may end in the
	// part after the one it started in).
	events := func(text string) int {
		tr, n := newTracker(), 0
		for _, l := range strings.Split(text, "\n") {
			if msg, _, pid, ok := syslogLine(l, time.Now()); ok && tr.feed(Line{Text: msg, PID: pid}, time.Now()) != nil {
				n++
			}
		}
		return n
	}
	n0 := events(parts[0])
	n1 := events(parts[0]+parts[1]) - n0
	n2 := len(want) - n0 - n1
	if n0 == 0 || n1 == 0 || n2 == 0 {
		t.Fatalf("parts complete %d, %d and %d events: each must complete some", n0, n1, n2)
	}

	s := start()
	appendFile(t, logPath, parts[0])
	waitUntil(t, "the first logins delivered", recorded(n0))

	// The cluster is unreachable: logins wait in the spool.
	cluster.mu.Lock()
	cluster.down = 1 << 30
	cluster.mu.Unlock()
	appendFile(t, logPath, parts[1])
	waitUntil(t, "the second logins spooled", pending(s, n1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Logins while the agent is stopped; it starts again, still cut off.
	appendFile(t, logPath, parts[2])
	s = start()
	defer s.Close()
	waitUntil(t, "all undelivered logins spooled", pending(s, n1+n2))

	// The cluster is back, but loses its first answer.
	cluster.mu.Lock()
	cluster.down, cluster.loseAnswer = 0, 1
	cluster.mu.Unlock()
	waitUntil(t, "every login delivered", pending(s, 0))

	var got []string
	cluster.mu.Lock()
	for _, e := range cluster.recorded {
		got = append(got, summary(&e))
	}
	cluster.mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("recorded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if seqs := fmt.Sprint(cluster.seqs()); seqs != "[1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("seqs %s", seqs)
	}
}

func TestStartLoginLogSettings(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	s, err := Start(context.Background(), Config{LoginLog: LogOff, SpoolDir: t.TempDir(), Logger: logger})
	if err != nil || s != nil {
		t.Fatalf("login_log off: %v, %v; want nothing started", s, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Config{LoginLog: "var/log/auth.log", SpoolDir: t.TempDir(), Logger: logger}); err == nil {
		t.Fatal("a relative login_log path was accepted")
	}
}
