package recording

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// testStart is the fake clock's start: the recording goes in dir/2026-11-25.
var testStart = time.Date(2026, 11, 25, 23, 59, 30, 0, time.UTC)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testStart} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errorLog collects what OnError reports.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) onError(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// readCast reads a recording strictly: every line whole, valid UTF-8 and
// valid JSON, the header version 2, then every event.
func readCast(t *testing.T, path string) (Header, []Event) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		t.Fatalf("%s does not end with a complete line", path)
	}
	for i, line := range bytes.Split(raw[:len(raw)-1], []byte{'\n'}) {
		if !utf8.Valid(line) || !json.Valid(line) {
			t.Fatalf("line %d is not valid UTF-8 JSON: %q", i+1, line)
		}
	}
	rd, err := NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd.Header(), evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// checkSummary checks a summary against the file on disk.
func checkSummary(t *testing.T, sum Summary) {
	t.Helper()
	raw, err := os.ReadFile(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(raw)
	if want := hex.EncodeToString(digest[:]); sum.SHA256 != want {
		t.Errorf("Summary.SHA256 = %s, file's is %s", sum.SHA256, want)
	}
	if sum.Bytes != int64(len(raw)) {
		t.Errorf("Summary.Bytes = %d, file has %d", sum.Bytes, len(raw))
	}
	if lines := bytes.Count(raw, []byte{'\n'}); sum.Events != lines-1 {
		t.Errorf("Summary.Events = %d, file has %d event lines", sum.Events, lines-1)
	}
}

// outputOf concatenates the output events' data.
func outputOf(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == EventOutput {
			b.WriteString(ev.Data)
		}
	}
	return b.String()
}

// eventually waits until cond holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		<-tick.C
	}
}
