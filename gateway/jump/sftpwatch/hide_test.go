package sftpwatch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A request that reuses the id of one awaiting its answer does not hide
// that one: the earlier is reported at once as unconfirmed, the answers go
// to the requests in order (an upload's handle is still followed) and the
// collision is counted.
func TestWatcherReusedIDReportsTheEarlier(t *testing.T) {
	const end = "sftp.end bytes_read 0 bytes_written 0"
	for _, tc := range []struct {
		name   string
		client [][]byte
		server [][]byte // answered after the whole client stream
		after  [][2][]byte
		want   []string
	}{{
		name: "ok/open-then-mkdir",
		client: [][]byte{
			pkt(fxpOpen, uint32(7), "/secret", uint32(2|8), uint32(0)),
			pkt(fxpMkdir, uint32(7), "/x"),
		},
		server: [][]byte{pkt(fxpHandle, uint32(7), "h"), pkt(fxpStatus, uint32(7), uint32(0))},
		after: [][2][]byte{
			{pkt(fxpWrite, uint32(8), "h", uint64(0), "12345"), pkt(fxpStatus, uint32(8), uint32(0))},
			{pkt(fxpClose, uint32(9), "h"), pkt(fxpStatus, uint32(9), uint32(0))},
		},
		want: []string{
			"sftp.open path /secret flags write,create outcome unconfirmed",
			"sftp.mkdir path /x",
			"sftp.write path /secret bytes 5",
			"sftp.end bytes_read 0 bytes_written 5",
			`sftp.suppressed count 0 types  paths [] untracked 0 collisions 1`,
		},
	}, {
		name: "ok/remove-rename-mkdir",
		client: [][]byte{
			pkt(fxpRemove, uint32(3), "/a"),
			pkt(fxpRename, uint32(3), "/b", "/c"),
			pkt(fxpMkdir, uint32(3), "/d"),
		},
		server: [][]byte{pkt(fxpStatus, uint32(3), uint32(0)), pkt(fxpStatus, uint32(3), uint32(0)), pkt(fxpStatus, uint32(3), uint32(0))},
		want: []string{
			"sftp.remove path /a outcome unconfirmed",
			"sftp.rename path /b new_path /c outcome unconfirmed",
			"sftp.mkdir path /d",
			end,
			`sftp.suppressed count 0 types  paths [] untracked 0 collisions 2`,
		},
	}, {
		name: "ok/posix-rename-then-refused-open",
		client: [][]byte{
			pkt(fxpExtended, uint32(5), "posix-rename@openssh.com", "/e", "/f"),
			pkt(fxpOpen, uint32(5), "/g", uint32(1), uint32(0)),
		},
		server: [][]byte{pkt(fxpStatus, uint32(5), uint32(0)), pkt(fxpStatus, uint32(5), uint32(2))},
		want: []string{
			"sftp.rename path /e new_path /f outcome unconfirmed",
			end,
			`sftp.suppressed count 0 types  paths [] untracked 0 collisions 1`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := &log{}
			w := New(l.emit)
			w.Client(slices.Concat(tc.client...))
			w.Server(slices.Concat(tc.server...))
			for _, x := range tc.after {
				w.Client(x[0])
				w.Server(x[1])
			}
			w.End()
			if !slices.Equal(l.events, tc.want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(l.events, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Requests still awaiting their answers when the channel ends are reported
// as unanswered, in the order of their ids.
func TestWatcherReportsUnansweredAtEnd(t *testing.T) {
	l := &log{}
	w := New(l.emit)
	w.Client(slices.Concat(
		pkt(fxpOpen, uint32(1), "/o", uint32(2|8|16), uint32(0)),
		pkt(fxpRename, uint32(2), "/p", "/q"),
		pkt(fxpRmdir, uint32(3), "/r"),
		pkt(fxpMkdir, uint32(4), "/answered"),
	))
	w.Server(pkt(fxpStatus, uint32(4), uint32(0)))
	w.End()
	want := []string{
		"sftp.mkdir path /answered",
		"sftp.open path /o flags write,create,truncate outcome unanswered",
		"sftp.rename path /p new_path /q outcome unanswered",
		"sftp.rmdir path /r outcome unanswered",
		"sftp.end bytes_read 0 bytes_written 0",
	}
	if !slices.Equal(l.events, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(l.events, "\n"), strings.Join(want, "\n"))
	}
}

// A flood of cheap events (mkdir) does not spend the budget of the weighty
// ones: a remove, a rename and an upload after it are still reported, and
// when the weighty budget runs out too, sftp.suppressed lists the held-back
// paths, the weighty first, at most maxHeldPaths.
func TestWatcherFloodDoesNotHideWeightyEvents(t *testing.T) {
	l := &log{}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newWatcher(l.emit, func() time.Time { return now })
	id := uint32(0)
	op := func(req []byte, answers ...[]byte) {
		w.Client(req)
		w.Server(slices.Concat(answers...))
	}
	next := func() uint32 { id++; return id }
	for i := range 2 * eventBurst {
		n := next()
		op(pkt(fxpMkdir, n, fmt.Sprintf("/m%d", i)), pkt(fxpStatus, n, uint32(0)))
	}
	n := next()
	op(pkt(fxpRemove, n, "/home/bob/evidence"), pkt(fxpStatus, n, uint32(0)))
	n = next()
	op(pkt(fxpRename, n, "/a", "/b"), pkt(fxpStatus, n, uint32(0)))
	n = next()
	op(pkt(fxpOpen, n, "/up", uint32(2|8), uint32(0)), pkt(fxpHandle, n, "h"))
	n = next()
	op(pkt(fxpWrite, n, "h", uint64(0), "xyz"), pkt(fxpStatus, n, uint32(0)))
	n = next()
	op(pkt(fxpClose, n, "h"), pkt(fxpStatus, n, uint32(0)))
	for _, want := range []string{
		"sftp.remove path /home/bob/evidence",
		"sftp.rename path /a new_path /b",
		"sftp.open path /up flags write,create",
		"sftp.write path /up bytes 3",
	} {
		if !slices.Contains(l.events, want) {
			t.Fatalf("%q not reported after a mkdir flood; last events %q", want, l.events[len(l.events)-3:])
		}
	}

	// Spend the rest of the weighty budget (4 went above); what follows is
	// held back and listed, the weighty first.
	for i := range weightyEventBurst {
		n := next()
		op(pkt(fxpRemove, n, fmt.Sprintf("/r%d", i)), pkt(fxpStatus, n, uint32(0)))
	}
	n = next()
	op(pkt(fxpRemove, n, "/held"), pkt(fxpStatus, n, uint32(0)))
	w.End()
	last := l.events[len(l.events)-1]
	const prefix = "sftp.suppressed count 205 types sftp.mkdir:200,sftp.remove:5 paths "
	if !strings.HasPrefix(last, prefix) {
		t.Fatalf("last event %q, want the prefix %q", last, prefix)
	}
	var held []heldPath
	js, _, _ := strings.Cut(strings.TrimPrefix(last, prefix), " untracked")
	if err := json.Unmarshal([]byte(js), &held); err != nil {
		t.Fatalf("paths %q: %v", js, err)
	}
	if len(held) != maxHeldPaths || held[0] != (heldPath{Type: EventSFTPRemove, Path: "/r9996"}) || held[4] != (heldPath{Type: EventSFTPRemove, Path: "/held"}) || held[5].Type != EventSFTPMkdir {
		t.Fatalf("held paths: %+v", held)
	}
}
