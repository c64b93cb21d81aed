package sftpwatch

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// pkt builds one SFTP packet of typ from fields: uint32, uint64 or string.
func pkt(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

type log struct{ events []string }

func (l *log) emit(typ string, kv ...string) {
	l.events = append(l.events, typ+" "+strings.Join(kv, " "))
}

// feed gives w the stream in pieces of n bytes (n 0: whole).
func feed(f func([]byte), b []byte, n int) {
	if n == 0 {
		f(b)
		return
	}
	for len(b) > 0 {
		k := min(n, len(b))
		f(b[:k])
		b = b[k:]
	}
}

func TestWatcher(t *testing.T) {
	// An upload (open for write, two writes, close), a download, a rename,
	// a remove, a refused open.
	client := slices.Concat(
		pkt(1, uint32(3)), // INIT
		pkt(fxpOpen, uint32(1), "/home/bob/up.txt", uint32(2|8|16), uint32(0)),
		pkt(fxpWrite, uint32(2), "h1", uint64(0), strings.Repeat("a", 1000)),
		pkt(fxpWrite, uint32(3), "h1", uint64(1000), strings.Repeat("b", 500)),
		pkt(fxpClose, uint32(4), "h1"),
		pkt(fxpOpen, uint32(5), "/etc/hostname", uint32(1), uint32(0)),
		pkt(fxpRead, uint32(6), "h2", uint64(0), uint32(32768)),
		pkt(fxpRead, uint32(7), "h2", uint64(7), uint32(32768)),
		pkt(fxpClose, uint32(8), "h2"),
		pkt(fxpRename, uint32(9), "/home/bob/up.txt", "/home/bob/done.txt"),
		pkt(fxpExtended, uint32(10), "posix-rename@openssh.com", "/home/bob/done.txt", "/home/bob/x\n.txt"),
		pkt(fxpRemove, uint32(11), "/home/bob/old.txt"),
		pkt(fxpOpen, uint32(12), "/root/secret", uint32(1), uint32(0)),
	)
	server := slices.Concat(
		pkt(2, uint32(3)), // VERSION
		pkt(fxpHandle, uint32(1), "h1"),
		pkt(fxpStatus, uint32(2), uint32(0)),
		pkt(fxpStatus, uint32(3), uint32(0)),
		pkt(fxpStatus, uint32(4), uint32(0)),
		pkt(fxpHandle, uint32(5), "h2"),
		pkt(fxpData, uint32(6), "web-1\n\n"),
		pkt(fxpStatus, uint32(7), uint32(1)), // EOF
		pkt(fxpStatus, uint32(8), uint32(0)),
		pkt(fxpStatus, uint32(9), uint32(0)),
		pkt(fxpStatus, uint32(10), uint32(0)),
		pkt(fxpStatus, uint32(11), uint32(0)),
		pkt(fxpStatus, uint32(12), uint32(3)), // permission denied: not reported
	)
	want := []string{
		"sftp.open path /home/bob/up.txt flags write,create,truncate",
		"sftp.write path /home/bob/up.txt bytes 1500",
		"sftp.open path /etc/hostname flags read",
		"sftp.read path /etc/hostname bytes 7",
		"sftp.rename path /home/bob/up.txt new_path /home/bob/done.txt",
		"sftp.rename path /home/bob/done.txt new_path /home/bob/x?.txt",
		"sftp.remove path /home/bob/old.txt",
		"sftp.end bytes_read 7 bytes_written 1500",
	}
	for _, n := range []int{0, 1, 7, 4096} {
		t.Run(fmt.Sprintf("ok/pieces-of-%d", n), func(t *testing.T) {
			l := &log{}
			w := New(l.emit)
			// Each reply follows its request, as on the wire: the client
			// writes to a handle only once the server has answered with it.
			for _, step := range []struct {
				server   bool
				from, to int // packets
			}{{false, 0, 2}, {true, 0, 2}, {false, 2, 6}, {true, 2, 6}, {false, 6, 8}, {true, 6, 8}, {false, 8, 13}, {true, 8, 13}} {
				if step.server {
					feed(w.Server, server[pktEnd(server, step.from):pktEnd(server, step.to)], n)
				} else {
					feed(w.Client, client[pktEnd(client, step.from):pktEnd(client, step.to)], n)
				}
			}
			w.End()
			if !slices.Equal(l.events, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(l.events, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// pktEnd is the offset just past the first k packets of b.
func pktEnd(b []byte, k int) int {
	off := 0
	for range k {
		off += 4 + int(binary.BigEndian.Uint32(b[off:]))
	}
	return off
}

// TestWatcherGivesUpOnGarbage: a stream that is not SFTP (a length past
// any packet) stops the watcher instead of buffering without bound.
func TestWatcherGivesUpOnGarbage(t *testing.T) {
	l := &log{}
	w := New(l.emit)
	w.Client([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	w.Client(pkt(fxpRemove, uint32(1), "/x"))
	if len(l.events) != 0 || w.in.buf != nil {
		t.Fatalf("events %v, buffered %d", l.events, len(w.in.buf))
	}
}

// An operation is reported only once the server answered it with success:
// a refused request leaves no event, and one still unanswered when the
// channel ends is reported as such.
func TestWatcherReportsAnsweredSuccessOnly(t *testing.T) {
	l := &log{}
	w := New(l.emit)
	w.Client(slices.Concat(
		pkt(fxpMkdir, uint32(1), "/a"),
		pkt(fxpMkdir, uint32(2), "/b"),
		pkt(fxpRemove, uint32(3), "/c"),
		pkt(fxpOpen, uint32(4), "/d", uint32(1), uint32(0)),
	))
	if len(l.events) != 0 {
		t.Fatalf("reported before any answer: %v", l.events)
	}
	w.Server(slices.Concat(
		pkt(fxpStatus, uint32(1), uint32(0)),
		pkt(fxpStatus, uint32(2), uint32(4)), // failure
		pkt(fxpStatus, uint32(4), uint32(2)), // no such file
	))
	w.End()
	want := []string{"sftp.mkdir path /a", "sftp.remove path /c outcome unanswered", "sftp.end bytes_read 0 bytes_written 0"}
	if !slices.Equal(l.events, want) {
		t.Fatalf("events %q, want %q", l.events, want)
	}
}

// A flood of operations is rate-limited per channel and what was held back
// is counted at its end; requests left unanswered are bounded.
func TestWatcherBoundsAFlood(t *testing.T) {
	l := &log{}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newWatcher(l.emit, func() time.Time { return now })
	const n = 10000
	for i := range uint32(n) {
		w.Client(pkt(fxpMkdir, i, fmt.Sprintf("/d%d", i)))
		w.Server(pkt(fxpStatus, i, uint32(0)))
	}
	if len(l.events) != eventBurst {
		t.Fatalf("%d events reported at once, want the burst of %d", len(l.events), eventBurst)
	}
	now = now.Add(time.Second) // a second later the limit lets more through
	w.Client(pkt(fxpMkdir, uint32(n), "/late"))
	w.Server(pkt(fxpStatus, uint32(n), uint32(0)))
	if last := l.events[len(l.events)-1]; last != "sftp.mkdir path /late" {
		t.Fatalf("after a second: %q", last)
	}
	// Requests the server never answers are not kept without bound.
	for i := range uint32(2 * maxPending) {
		w.Client(pkt(fxpRemove, n+1+i, "/x"))
	}
	if len(w.pending) > maxPending {
		t.Fatalf("%d requests kept awaiting answers", len(w.pending))
	}
	w.End()
	want := fmt.Sprintf("sftp.suppressed count %d types sftp.mkdir:%d paths [{\"type\":\"sftp.mkdir\",\"path\":\"/d200\"},", n-eventBurst, n-eventBurst)
	if got := l.events[len(l.events)-1]; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, fmt.Sprintf("\"/d249\"}] untracked %d collisions 0", maxPending)) {
		t.Fatalf("last event %q, want %q", got, want)
	}
}
