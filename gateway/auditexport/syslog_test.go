package auditexport

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/rampart-ssh/rampart/raftstore"
)

// TestSyslogNewlineActorCannotForge: under newline framing, an actor with a
// newline and other control characters (a login an IdP sent) stays one
// record on the wire; the control characters arrive as U+FFFD.
func TestSyslogNewlineActorCannotForge(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines := make(chan string, 16)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	sink := NewSyslogSink(ln.Addr().String(), nil, true, 13, "n1", "rampart", 5*time.Second)
	t.Cleanup(func() { sink.Close() })
	now := time.Now().UTC()
	forged := "mallory\n<14>1 2026-01-01T00:00:00Z n1 rampart - login [x@32473 actor=\"admin\"] forged\r\x1b[2J\x00"
	batch := []*raftstore.AuditEvent{
		{Seq: 1, Time: now, Type: "login", Actor: forged},
		{Seq: 2, Time: now, Type: "login", Actor: "bob"},
	}
	if err := sink.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("connection closed after %d lines", len(got))
			}
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d lines arrived, want 2", len(got))
		}
	}
	if !strings.Contains(got[0], `seq="1"`) || !strings.Contains(got[1], `seq="2"`) {
		t.Fatalf("lines:\n%q\n%q", got[0], got[1])
	}
	if strings.ContainsFunc(got[0], unicode.IsControl) {
		t.Fatalf("record 1 carries control characters: %q", got[0])
	}
	if !strings.Contains(got[0], `actor="mallory`+"\uFFFD"+`<14>1`) {
		t.Fatalf("record 1 actor not escaped as expected: %q", got[0])
	}
}
