package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// spillWith makes a spill in a new directory holding events n=0..count-1
// and closes it; it returns the directory and the queue's lines.
func spillWith(t *testing.T, count int) (string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	s, err := openSpill(dir, 1<<20, testSpillKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		ev := raftstore.AuditEventInput{Time: t0, Type: "login.accept", Actor: "alice", Fields: map[string]string{"n": strconv.Itoa(i)}}
		if err := s.append(&ev, false); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	return dir, queueLines(t, dir)
}

func queueLines(t *testing.T, dir string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, spillQueueFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte{'\n'})[:bytes.Count(data, []byte{'\n'})]
}

func writeQueue(t *testing.T, dir string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, spillQueueFile), bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// describe renders what a peek read: n=N for an event, reason[/missing]
// for an audit.spill_corrupt one.
func describe(evs []raftstore.AuditEventInput) string {
	var out []string
	for _, ev := range evs {
		if ev.Type == EventAuditSpillCorrupt {
			d := ev.Fields["reason"]
			if m := ev.Fields["missing"]; m != "" {
				d += "/" + m
			}
			out = append(out, d)
			continue
		}
		out = append(out, "n="+ev.Fields["n"])
	}
	return strings.Join(out, " ")
}

// A line of the spill that cannot be trusted is moved to the quarantine
// file and reported in its place, never stalls the queue: an edited line,
// one injected by someone without the key, a replayed one, a removed one
// (reported as missing), garbage; an offset that is forged or not on a
// line boundary is not trusted (read again from the start, never skipping).
func TestSpillIntegrity(t *testing.T) {
	// Lines: 0 the header, 1..4 events n=0..3.
	tests := []struct {
		name string
		edit func(t *testing.T, dir string, lines [][]byte) [][]byte
		want string
		// quarantined lines expected
		quarantined int
	}{
		{"ok/intact", func(_ *testing.T, _ string, l [][]byte) [][]byte { return l }, "n=0 n=1 n=2 n=3", 0},
		{"fail/edited-event", func(_ *testing.T, _ string, l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte("alice"), []byte("malle"), 1)
			return l
		}, "n=0 bad_mac n=2 n=3", 1},
		{"fail/injected-without-key", func(_ *testing.T, _ string, l [][]byte) [][]byte {
			ev, _ := json.Marshal(raftstore.AuditEventInput{Time: t0, Type: "login.accept", Actor: "mallory", Fields: map[string]string{"n": "x"}})
			forged, _ := json.Marshal(spillLine{N: 3, Ev: ev, MAC: strings.Repeat("0", 64)})
			return append(l[:3], append([][]byte{append(forged, '\n')}, l[3:]...)...)
		}, "n=0 n=1 bad_mac n=2 n=3", 1},
		{"fail/replayed", func(_ *testing.T, _ string, l [][]byte) [][]byte {
			return append(l[:4], append([][]byte{l[1]}, l[4:]...)...)
		},
			"n=0 n=1 n=2 replayed n=3", 1},
		{"fail/removed", func(_ *testing.T, _ string, l [][]byte) [][]byte { return append(l[:2], l[3:]...) }, "n=0 missing/1 n=2 n=3", 0},
		{"fail/garbage", func(_ *testing.T, _ string, l [][]byte) [][]byte {
			l[3] = []byte("\x00\x01 not json\n")
			return l
		}, "n=0 n=1 unreadable n=3", 1},
		{"fail/other-queue's-line", func(t *testing.T, _ string, l [][]byte) [][]byte {
			_, other := spillWith(t, 4) // another epoch
			l[3] = other[3]
			return l
		}, "n=0 n=1 bad_mac n=3", 1},
		{"fail/offset-mid-line", func(t *testing.T, dir string, l [][]byte) [][]byte {
			off := len(l[0]) + len(l[1]) + 5
			if err := os.WriteFile(filepath.Join(dir, spillOffsetFile), []byte(strconv.Itoa(off)+" 2 "+strings.Repeat("0", 64)), 0o600); err != nil {
				t.Fatal(err)
			}
			return l
		}, "bad_offset n=0 n=1 n=2 n=3", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, lines := spillWith(t, 4)
			writeQueue(t, dir, tc.edit(t, dir, lines))
			s, err := openSpill(dir, 1<<20, testSpillKey)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			r, err := s.peek(maxBatch, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(r.events); got != tc.want {
				t.Fatalf("read %q, want %q", got, tc.want)
			}
			q, _ := os.ReadFile(filepath.Join(dir, spillQuarantineFile))
			if n := bytes.Count(q, []byte{'\n'}); n != tc.quarantined {
				t.Fatalf("%d line(s) quarantined, want %d", n, tc.quarantined)
			}
			if err := s.commit(r); err != nil || s.count != 0 || s.size != 0 {
				t.Fatalf("after commit: count %d size %d err %v", s.count, s.size, err)
			}
		})
	}
}

// A forged line no longer stalls the writer: the events around it reach the
// cluster, with the audit.spill_corrupt event in its place, and the spill
// empties.
func TestWriterSpillCorruptLineDoesNotStall(t *testing.T) {
	dir, lines := spillWith(t, 3)
	lines[2] = bytes.Replace(lines[2], []byte("alice"), []byte("malle"), 1)
	writeQueue(t, dir, lines)
	store := &fakeStore{}
	w := New(store, slog.New(slog.DiscardHandler))
	if err := w.SetSpill(dir, 1<<20, testSpillKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go w.Run(ctx)
	var all []raftstore.AuditEventInput
	waitFor(t, "the spill is written", func() bool {
		all = nil
		for _, b := range store.taken() {
			all = append(all, b...)
		}
		return len(all) == 3
	})
	if got := describe(all); got != "n=0 bad_mac n=2" {
		t.Fatalf("written %q", got)
	}
	if c := all[1]; c.Actor != "rampartd" || c.Fields["quarantine"] != spillQuarantineFile || c.Fields["offset"] == "" || c.Fields["bytes"] == "" {
		t.Fatalf("corrupt event %+v", c)
	}
	waitFor(t, "the spill is empty", func() bool { return !w.pendingSpill() })
}

// A queue left by an older version (plain JSON lines, a plain offset) is
// rewritten with MACs on open; nothing taken is replayed, nothing is lost.
func TestSpillLegacyQueue(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	for i := range 3 {
		b, _ := json.Marshal(raftstore.AuditEventInput{Time: t0, Type: "login.accept", Fields: map[string]string{"n": strconv.Itoa(i)}})
		buf.Write(append(b, '\n'))
	}
	first := bytes.IndexByte(buf.Bytes(), '\n') + 1
	if err := os.WriteFile(filepath.Join(dir, spillQueueFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, spillOffsetFile), []byte(strconv.Itoa(first)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSpill(dir, 1<<20, testSpillKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	r, err := s.peek(maxBatch, t0)
	if err != nil || describe(r.events) != "n=1 n=2" {
		t.Fatalf("read %q, %v", describe(r.events), err)
	}
}

// A forged last line cannot steer the numbering: its number (here the
// largest, which would wrap the next to 0) counts only when its MAC checks,
// so the honest events appended after it are read, not refused as replayed.
func TestSpillForgedLastNumberIgnored(t *testing.T) {
	dir, lines := spillWith(t, 2)
	ev, _ := json.Marshal(raftstore.AuditEventInput{Time: t0, Type: "login.accept", Actor: "mallory", Fields: map[string]string{"n": "x"}})
	forged, _ := json.Marshal(spillLine{N: math.MaxUint64, Ev: ev, MAC: strings.Repeat("0", 64)})
	writeQueue(t, dir, append(lines, append(forged, '\n')))
	s, err := openSpill(dir, 1<<20, testSpillKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, n := range []string{"2", "3"} {
		ev := raftstore.AuditEventInput{Time: t0, Type: "login.accept", Actor: "alice", Fields: map[string]string{"n": n}}
		if err := s.append(&ev, false); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.peek(maxBatch, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(r.events), "n=0 n=1 bad_mac n=2 n=3"; got != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}
