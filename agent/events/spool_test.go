package events

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

func testEvent(user string) api.LoginEvent {
	return api.LoginEvent{Time: time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC), Outcome: api.LoginAccepted, User: user, Source: "10.0.0.5", Port: 5000}
}

func openTestSpool(t *testing.T, dir string, max int) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seqsOf(events []api.LoginEvent) string {
	var out []uint64
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return fmt.Sprint(out)
}

func mustPending(t *testing.T, s *Spool) []api.LoginEvent {
	t.Helper()
	p, err := s.Pending(1000)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSpoolSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir, 100)
	pos := Position{Path: "/var/log/auth.log", Inode: 42, Offset: 1234}
	out, err := s.Append([]api.LoginEvent{testEvent("a"), testEvent("b")}, pos)
	if err != nil {
		t.Fatal(err)
	}
	if seqsOf(out) != "[1 2]" {
		t.Fatalf("seqs %s, want [1 2]", seqsOf(out))
	}
	if _, err := s.Append([]api.LoginEvent{testEvent("c")}, Position{Path: pos.Path, Inode: 42, Offset: 2000}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestSpool(t, dir, 100)
	defer s.Close()
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.NextSeq != 4 || st.Acked != 1 || st.Pending != 2 || !st.HasPosition || st.Position.Offset != 2000 {
		t.Fatalf("after reopen: %+v", st)
	}
	p := mustPending(t, s)
	if seqsOf(p) != "[2 3]" || p[0].User != "b" || p[1].User != "c" {
		t.Fatalf("pending after reopen: %+v", p)
	}
	if err := s.Ack(3); err != nil {
		t.Fatal(err)
	}
	if p := mustPending(t, s); len(p) != 0 {
		t.Fatalf("pending after acking all: %+v", p)
	}
	// Numbers are never reused, even with the spool empty.
	out, err = s.Append([]api.LoginEvent{testEvent("d")}, pos)
	if err != nil || seqsOf(out) != "[4]" {
		t.Fatalf("next append: %s, %v", seqsOf(out), err)
	}
}

func TestSpoolOneHolder(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir, 10)
	defer s.Close()
	if _, err := OpenSpool(dir, 10); err == nil {
		t.Fatal("a second process opened the spool while the first holds it")
	}
}

func TestSpoolFull(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), 2)
	defer s.Close()
	if _, err := s.Append([]api.LoginEvent{testEvent("a"), testEvent("b")}, Position{Offset: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]api.LoginEvent{testEvent("c")}, Position{Offset: 2}); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("append to a full spool: %v, want ErrSpoolFull", err)
	}
	st, _ := s.State()
	if st.Position.Offset != 1 || st.NextSeq != 3 {
		t.Fatalf("a refused append changed the spool: %+v", st)
	}
	// A checkpoint carries no event: it fits.
	if err := s.Checkpoint(Position{Offset: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]api.LoginEvent{testEvent("c")}, Position{Offset: 4}); err != nil {
		t.Fatalf("append after an ack made room: %v", err)
	}
}

func TestSpoolAckBounds(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), 10)
	defer s.Close()
	s.Append([]api.LoginEvent{testEvent("a")}, Position{})
	if err := s.Ack(5); err == nil {
		t.Fatal("acked a seq the spool never numbered")
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatalf("acking again: %v", err)
	}
}

func TestSpoolRebase(t *testing.T) {
	cases := []struct {
		name        string
		acked       uint64 // acknowledged before, of 5 appended
		clusterLast uint64
		wantChanged bool
		wantPending string
		wantNext    uint64
	}{
		{name: "ok/cluster-knows-nothing", clusterLast: 0, wantPending: "[1 2 3 4 5]", wantNext: 6},
		{name: "ok/new-spool-after-older-stream", clusterLast: 500, wantChanged: true, wantPending: "[501 502 503 504 505]", wantNext: 506},
		{name: "ok/cluster-behind-acked", acked: 2, clusterLast: 1, wantPending: "[3 4 5]", wantNext: 6},
		{name: "ok/cluster-ahead-of-spool", acked: 2, clusterLast: 9, wantChanged: true, wantPending: "[10 11 12]", wantNext: 13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestSpool(t, t.TempDir(), 100)
			defer s.Close()
			var evs []api.LoginEvent
			for _, u := range []string{"a", "b", "c", "d", "e"} {
				evs = append(evs, testEvent(u))
			}
			s.Append(evs, Position{Offset: 9})
			if tc.acked > 0 {
				s.Ack(tc.acked)
			}
			changed, err := s.Rebase(tc.clusterLast)
			if err != nil {
				t.Fatal(err)
			}
			p := mustPending(t, s)
			st, _ := s.State()
			if changed != tc.wantChanged || seqsOf(p) != tc.wantPending || st.NextSeq != tc.wantNext || !st.Synced || st.Pending != len(p) {
				t.Fatalf("changed %v, pending %s, state %+v; want %v, %s, next %d", changed, seqsOf(p), st, tc.wantChanged, tc.wantPending, tc.wantNext)
			}
			if p[len(p)-1].User != "e" {
				t.Fatalf("order lost: %+v", p)
			}
			if st.Position.Offset != 9 {
				t.Fatalf("position lost: %+v", st.Position)
			}
		})
	}
}
