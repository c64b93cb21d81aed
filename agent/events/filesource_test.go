package events

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector records what a source hands over.
type collector struct {
	mu    sync.Mutex
	lines []Line
}

func (c *collector) emit(l Line) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	return nil
}

// texts are the sshd messages handed over (position-only lines left out).
func (c *collector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		if l.Text != "" {
			out = append(out, l.Text)
		}
	}
	return out
}

// waitLines waits until at least n lines were handed over.
func (c *collector) waitLines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.lines)
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines handed over, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *collector) last() Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines[len(c.lines)-1]
}

// waitTexts waits until the source handed over want, exactly.
func (c *collector) waitTexts(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.texts()
		if strings.Join(got, "|") == strings.Join(want, "|") {
			return
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("lines handed over: %.300q, want %.300q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runSource runs src from pos until the returned stop is called.
func runSource(t *testing.T, src Source, pos Position) (*collector, func()) {
	t.Helper()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, pos, c.emit) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("source: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func testFileSource(path string) *FileSource {
	return &FileSource{Path: path, Poll: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

func TestFileSourceFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	appendFile(t, path, "before the agent started\n")
	c, stop := runSource(t, testFileSource(path), Position{})
	// First start: from the end, and that position is handed over.
	c.waitLines(t, 1)
	if first := c.last(); first.Text != "" || first.Pos.Offset != int64(len("before the agent started\n")) || first.Pos.Inode == 0 {
		t.Fatalf("first line handed over: %+v, want the end position only", first)
	}

	appendFile(t, path, "one\ntw")
	c.waitTexts(t, "one")
	appendFile(t, path, "o\r\nMay 10 12:00:01 web-1 CRON[1]: not sshd\nMay 10 12:00:02 web-1 sshd[7]: three\n")
	c.waitTexts(t, "one", "two", "three")
	if l := c.last(); l.PID != 7 || l.Time.IsZero() {
		t.Fatalf("syslog line: %+v", l)
	}
	fi, _ := os.Stat(path)
	if got := c.last().Pos.Offset; got != fi.Size() {
		t.Fatalf("position after the last line %d, file size %d", got, fi.Size())
	}

	// logrotate's default: rename, then a new file. A line written to the
	// old file after the rename is still read, then the new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", "four\n")
	appendFile(t, path, "five\n")
	c.waitTexts(t, "one", "two", "three", "four", "five")

	// copytruncate: the file shrinks; reading starts again at 0.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "six\n")
	c.waitTexts(t, "one", "two", "three", "four", "five", "six")
	stop()
}

func TestFileSourceResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshd.log")
	appendFile(t, path, "")
	c, stop := runSource(t, testFileSource(path), Position{})
	c.waitLines(t, 1) // reading from now on
	appendFile(t, path, "one\n")
	c.waitTexts(t, "one")
	stop()
	pos := c.last().Pos

	cases := []struct {
		name   string
		change func(t *testing.T)
		want   []string
	}{
		{"ok/appended-while-stopped", func(t *testing.T) { appendFile(t, path, "two\n") }, []string{"two"}},
		{"ok/rotated-while-stopped", func(t *testing.T) {
			appendFile(t, path, "three\n")
			os.Rename(path, path+".1")
			appendFile(t, path, "four\n")
		}, []string{"three", "four"}},
		{"ok/truncated-while-stopped", func(t *testing.T) {
			os.Truncate(path, 0)
			appendFile(t, path, "x\n")
		}, []string{"x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(t)
			c, stop := runSource(t, testFileSource(path), pos)
			c.waitTexts(t, tc.want...)
			stop()
			pos = c.last().Pos
			if fi, _ := os.Stat(path); pos.Offset != fi.Size() || pos.Inode != fileID(fi) {
				t.Fatalf("position %+v, file size %d inode %d", pos, fi.Size(), fileID(fi))
			}
		})
	}
}

func TestFileSourceWaitsForFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secure")
	logs := &logBuffer{}
	src := testFileSource(path)
	src.Logger = slog.New(slog.NewTextHandler(logs, nil))
	c, stop := runSource(t, src, Position{})
	logs.waitFor(t, "waiting for it")
	// A log that appears after the start is read from its start.
	appendFile(t, path, "one\n")
	c.waitTexts(t, "one")
	stop()
}

// logBuffer is a log sink a test can wait on.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, l.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFileSourceLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	appendFile(t, path, "")
	c, stop := runSource(t, testFileSource(path), Position{})
	c.waitLines(t, 1)
	long := strings.Repeat("x", maxLineLen+100)
	appendFile(t, path, long+"\nafter\n")
	c.waitTexts(t, long[:maxLineLen], "after")
	fi, _ := os.Stat(path)
	if got := c.last().Pos.Offset; got != fi.Size() {
		t.Fatalf("offset %d after a cut line, want %d", got, fi.Size())
	}
	stop()
}
