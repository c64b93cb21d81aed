package recording

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type step struct {
	wait time.Duration // the clock moves this much first
	do   func(r *Recorder) error
}

func output(s string) func(*Recorder) error {
	return func(r *Recorder) error {
		n, err := r.OutputWriter().Write([]byte(s))
		if err == nil && n != len(s) {
			return errors.New("short write")
		}
		return err
	}
}

func input(s string) func(*Recorder) error {
	return func(r *Recorder) error {
		n, err := r.InputWriter().Write([]byte(s))
		if err == nil && n != len(s) {
			return errors.New("short write")
		}
		return err
	}
}

func resize(w, h int) func(*Recorder) error {
	return func(r *Recorder) error { return r.Resize(w, h) }
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestRecorderEvents(t *testing.T) {
	big := strings.Repeat("é", 3*maxEventData/2) // 3 × maxEventData bytes
	cases := []struct {
		name        string
		recordInput bool
		steps       []step
		closeAfter  time.Duration
		duration    time.Duration // Summary.Duration, if not the clock's
		want        []Event
		wantOutput  string // instead of want, for big cases
	}{
		{
			name: "ok/output-and-resize",
			steps: []step{
				{ms(500), output("hello\r\n")},
				{ms(250), resize(100, 30)},
				{ms(1250), output("bye")},
			},
			closeAfter: ms(1000),
			want: []Event{
				{ms(500), EventOutput, "hello\r\n"},
				{ms(750), EventResize, "100x30"},
				{ms(2000), EventOutput, "bye"},
			},
		},
		{
			name:        "ok/input-when-asked",
			recordInput: true,
			steps:       []step{{ms(100), input("ls\r")}, {ms(10), output("ls\r\n")}},
			want:        []Event{{ms(100), EventInput, "ls\r"}, {ms(110), EventOutput, "ls\r\n"}},
		},
		{
			name:  "ok/input-dropped-by-default",
			steps: []step{{ms(100), input("hunter2\r")}, {ms(10), output("$ ")}},
			want:  []Event{{ms(110), EventOutput, "$ "}},
		},
		{
			name: "ok/utf8-split-across-writes",
			steps: []step{
				{ms(1), output("a\xc3")},                // é = c3 a9
				{ms(1), output("\xa9b")},                //
				{ms(1), output("\xf0")},                 // 😀 = f0 9f 98 80, a byte at a time
				{ms(1), output("\x9f")},                 //
				{ms(1), output("\x98")},                 //
				{ms(1), output("\x80!")},                //
				{ms(1), output("\xe2\x9c")},             // ✓ = e2 9c 93
				{ms(1), output("\x93")},                 //
				{ms(1), output("x\xe2")},                // ✓ again, 1+2
				{ms(1), output("\x9c\x93\xe2\x9c\x93")}, // and a whole one
			},
			want: []Event{
				{ms(1), EventOutput, "a"},
				{ms(2), EventOutput, "éb"},
				{ms(6), EventOutput, "😀!"},
				{ms(8), EventOutput, "✓"},
				{ms(9), EventOutput, "x"},
				{ms(10), EventOutput, "✓✓"},
			},
		},
		{
			name: "ok/invalid-utf8-replaced",
			steps: []step{
				{ms(1), output("a\xffb\x80c")},
				{ms(1), output("\xc3(")},         // a lead byte the next write does not continue
				{ms(1), output("\xed\xa0\x80.")}, // a UTF-16 surrogate
			},
			want: []Event{
				{ms(1), EventOutput, "a\uFFFDb\uFFFDc"},
				{ms(2), EventOutput, "\uFFFD("},
				{ms(3), EventOutput, "\uFFFD\uFFFD\uFFFD."},
			},
		},
		{
			name:       "ok/incomplete-character-at-close",
			steps:      []step{{ms(5), output("z\xe2\x9c")}},
			closeAfter: ms(5),
			// Invalid bytes become U+FFFD one for one, as utf8.DecodeRune reads them.
			want: []Event{{ms(5), EventOutput, "z"}, {ms(10), EventOutput, "\uFFFD\uFFFD"}},
		},
		{
			name:  "ok/escapes",
			steps: []step{{ms(1), output("\x1b[31m\"q\"\\\t\x00\x7f\u2028</script>&")}},
			want:  []Event{{ms(1), EventOutput, "\x1b[31m\"q\"\\\t\x00\x7f\u2028</script>&"}},
		},
		{
			name:  "ok/resize-to-nothing-ignored",
			steps: []step{{ms(1), resize(0, 40)}, {ms(1), resize(80, -1)}, {ms(1), output(".")}},
			want:  []Event{{ms(3), EventOutput, "."}},
		},
		{
			name:     "ok/clock-stepping-back",
			steps:    []step{{ms(2000), output("1")}, {-ms(1500), output("2")}, {ms(1000), output("3")}},
			want:     []Event{{ms(2000), EventOutput, "1"}, {ms(2000), EventOutput, "2"}, {ms(2000), EventOutput, "3"}},
			duration: ms(2000),
		},
		{
			name:       "ok/large-write-split",
			steps:      []step{{ms(1), output(big[:len(big)-1])}, {ms(1), output(big[len(big)-1:])}},
			wantOutput: big,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newClock()
			var errs errorLog
			r, err := New(Config{
				Dir: dir, SessionID: "s-0123abcd", Width: 120, Height: 40,
				Term: "xterm-256color", Shell: "/bin/bash", Title: "alice@example.com on web-1",
				RecordInput: tc.recordInput, Now: clk.now, OnError: errs.onError,
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				clk.advance(s.wait)
				if err := s.do(r); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			clk.advance(tc.closeAfter)
			sum, err := r.Close()
			if err != nil {
				t.Fatalf("Close: %v", err)
			}

			wantPath := filepath.Join(dir, "2026-11-25", "s-0123abcd.cast")
			if sum.Path != wantPath {
				t.Errorf("Path = %s, want %s", sum.Path, wantPath)
			}
			fi, err := os.Stat(sum.Path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %o, want 600", fi.Mode().Perm())
			}
			checkSummary(t, sum)
			want := clk.now().Sub(testStart)
			if tc.duration != 0 {
				want = tc.duration
			}
			if sum.Duration != want {
				t.Errorf("Duration = %v, want %v", sum.Duration, want)
			}
			hdr, evs := readCast(t, sum.Path)
			wantHdr := Header{
				Version: 2, Width: 120, Height: 40, Timestamp: testStart.Unix(),
				Env:   map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/bash"},
				Title: "alice@example.com on web-1",
			}
			if !reflect.DeepEqual(hdr, wantHdr) {
				t.Errorf("header = %+v, want %+v", hdr, wantHdr)
			}
			if sum.Events != len(evs) {
				t.Errorf("Summary.Events = %d, read %d", sum.Events, len(evs))
			}
			if tc.wantOutput != "" {
				if got := outputOf(evs); got != tc.wantOutput {
					t.Errorf("output differs: %d bytes, want %d", len(got), len(tc.wantOutput))
				}
				if len(evs) < 3 {
					t.Errorf("%d events, want the write split into several", len(evs))
				}
			} else if !reflect.DeepEqual(evs, tc.want) {
				t.Errorf("events:\n got %q\nwant %q", evs, tc.want)
			}
			if got := errs.all(); len(got) != 0 {
				t.Errorf("OnError called: %v", got)
			}
		})
	}
}

func TestRecorderHeaderDefaults(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir(), SessionID: "s-1", Now: newClock().now})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"width":80,"height":24,"timestamp":` + strconv.FormatInt(testStart.Unix(), 10) + "}\n"
	if string(raw) != want {
		t.Errorf("file = %q, want %q", raw, want)
	}
	if sum.Events != 0 {
		t.Errorf("Events = %d, want 0", sum.Events)
	}
}

func TestFlusherWritesBeforeClose(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir(), SessionID: "s-flush"})
	if err != nil {
		t.Fatal(err)
	}
	path := r.path
	header, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Output([]byte("still typing\r\n")); err != nil {
		t.Fatal(err)
	}
	// The flusher ticks every second; allow for a slow, loaded machine.
	eventually(t, 10*time.Second, "the output event never reached the file before Close", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > header.Size()
	})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"o", "still typing\r\n"]`)) {
		t.Errorf("file = %q", raw)
	}
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionIDs(t *testing.T) {
	cases := []struct {
		name, id string
		ok       bool
	}{
		{"ok/hex", "s-0123456789abcdef", true},
		{"ok/uuid", "0b5e1c1e-5f0a-4c8e-9a43-2f1f1c0d9e7a", true},
		{"ok/dots-inside", "node1.s_42", true},
		{"fail/empty", "", false},
		{"fail/parent", "../x", false},
		{"fail/slash", "a/b", false},
		{"fail/absolute", "/etc/passwd", false},
		{"fail/dot", ".", false},
		{"fail/dot-dot", "..", false},
		{"fail/hidden", ".cast", false},
		{"fail/leading-dash", "-rf", false},
		{"fail/backslash", `a\b`, false},
		{"fail/nul", "a\x00b", false},
		{"fail/space", "a b", false},
		{"fail/newline", "a\nb", false},
		{"fail/non-ascii", "sé", false},
		{"fail/too-long", strings.Repeat("a", 129), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "recordings")
			for _, policy := range []Policy{FailClosed, FailOpen} {
				r, err := New(Config{Dir: dir, SessionID: tc.id, Policy: policy, Now: newClock().now})
				if tc.ok {
					if err != nil {
						t.Fatalf("%v: %v", policy, err)
					}
					sum, err := r.Close()
					if err != nil {
						t.Fatal(err)
					}
					if want := filepath.Join(dir, "2026-11-25", tc.id+".cast"); sum.Path != want {
						t.Fatalf("Path = %s, want %s", sum.Path, want)
					}
					if err := os.Remove(sum.Path); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if !errors.Is(err, ErrBadSessionID) || r != nil {
					t.Fatalf("%v: New = %v, %v; want ErrBadSessionID", policy, r, err)
				}
				if err := ValidateSessionID(tc.id); !errors.Is(err, ErrBadSessionID) {
					t.Fatalf("ValidateSessionID = %v", err)
				}
				// Nothing was created, inside the directory or beside it.
				if ents, _ := os.ReadDir(base); len(ents) != 0 {
					t.Fatalf("created %v", ents)
				}
			}
		})
	}
}

func TestRecorderRefusesExistingFile(t *testing.T) {
	cases := []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"fail/same-session-twice", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("earlier recording\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"fail/symlink-planted", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "victim"), path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			day := filepath.Join(dir, "2026-11-25")
			if err := os.MkdirAll(day, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(day, "s-1.cast")
			tc.plant(t, path)
			before, _ := os.ReadFile(path)
			_, err := New(Config{Dir: dir, SessionID: "s-1", Now: newClock().now})
			if !errors.Is(err, ErrRecordingFailed) || !errors.Is(err, os.ErrExist) {
				t.Fatalf("New = %v, want ErrRecordingFailed and ErrExist", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("existing file changed: %q", after)
			}
			if _, err := os.Lstat(filepath.Join(day, "victim")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("symlink followed: %v", err)
			}
		})
	}
}

func TestRecorderAfterClose(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir(), SessionID: "s-1", Now: newClock().now})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Output([]byte("x")); err != nil {
		t.Fatal(err)
	}
	first, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	for name, do := range map[string]func() error{
		"output": func() error { return r.Output([]byte("y")) },
		"resize": func() error { return r.Resize(1, 1) },
		"writer": func() error { _, err := r.OutputWriter().Write([]byte("y")); return err },
	} {
		if err := do(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Errorf("Flush after Close = %v", err)
	}
	again, err := r.Close()
	if err != nil || again != first {
		t.Errorf("second Close = %+v, %v; want %+v", again, err, first)
	}
	checkSummary(t, again)
}

// limitFile is a real file on a disk that holds only limit bytes: the write
// that crosses the limit is cut short with ENOSPC, as write(2) does.
type limitFile struct {
	*os.File
	limit, n int64
}

func (f *limitFile) Write(p []byte) (int, error) {
	room := max(f.limit-f.n, 0)
	if int64(len(p)) <= room {
		n, err := f.File.Write(p)
		f.n += int64(n)
		return n, err
	}
	n, err := f.File.Write(p[:room])
	f.n += int64(n)
	if err == nil {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

// TestRecorderShortWrite checks, on any OS and as any user, that a write cut
// short by a full disk leaves a file that ends at a whole event and matches
// its digest, under both policies. TestDiskFailures does the same on a real
// full tmpfs.
func TestRecorderShortWrite(t *testing.T) {
	for _, policy := range []Policy{FailClosed, FailOpen} {
		name := map[Policy]string{FailClosed: "fail/short-write-closed", FailOpen: "ok/short-write-open"}[policy]
		t.Run(name, func(t *testing.T) {
			var errs errorLog
			open := func(name string, flag int, perm os.FileMode) (file, error) {
				f, err := os.OpenFile(name, flag, perm)
				if err != nil {
					return nil, err
				}
				return &limitFile{File: f, limit: 1000}, nil
			}
			r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", Policy: policy, OnError: errs.onError, Now: newClock().now}, open)
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Repeat("0123456789", 9) + "\r\n"
			var werr error
			for i := 0; i < 100 && werr == nil; i++ {
				if werr = r.Output([]byte(line)); werr == nil {
					werr = r.Flush()
				}
			}
			checkFailure(t, policy, werr, &errs, syscall.ENOSPC)
			sum, err := r.Close()
			if !errors.Is(err, ErrRecordingFailed) {
				t.Errorf("Close = %v, want ErrRecordingFailed", err)
			}
			checkSummary(t, sum)
			_, evs := readCast(t, sum.Path)
			if len(evs) == 0 || sum.Bytes > 1000 {
				t.Errorf("%d events, %d bytes", len(evs), sum.Bytes)
			}
		})
	}
}

// checkFailure checks what the session saw (werr, from its writes) and what
// was reported through OnError, for a failure caused by errno.
func checkFailure(t *testing.T, policy Policy, werr error, errs *errorLog, errno error) {
	t.Helper()
	switch policy {
	case FailClosed:
		if !errors.Is(werr, ErrRecordingFailed) || !errors.Is(werr, errno) {
			t.Errorf("writes returned %v, want ErrRecordingFailed and %v", werr, errno)
		}
	case FailOpen:
		if werr != nil {
			t.Errorf("writes returned %v, want nil under FailOpen", werr)
		}
	}
	got := errs.all()
	if len(got) != 1 || !errors.Is(got[0], ErrRecordingFailed) || !errors.Is(got[0], errno) {
		t.Errorf("OnError got %v, want one error wrapping ErrRecordingFailed and %v", got, errno)
	}
}

// checkUnwritable runs a session against a directory where nothing can be
// created, under policy: FailClosed refuses it, FailOpen lets it run
// unrecorded.
func checkUnwritable(t *testing.T, dir string, policy Policy, errno error) {
	t.Helper()
	var errs errorLog
	r, err := New(Config{Dir: dir, SessionID: "s-1", Policy: policy, OnError: errs.onError, RecordInput: true, Now: newClock().now})
	if policy == FailClosed {
		if r != nil || !errors.Is(err, ErrRecordingFailed) || !errors.Is(err, errno) {
			t.Fatalf("New = %v, %v; want ErrRecordingFailed and %v", r, err, errno)
		}
		if got := errs.all(); len(got) != 0 {
			t.Errorf("OnError got %v; New's error is the report", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("New = %v, want a recorder that drops everything", err)
	}
	var werr error
	for _, do := range []func(*Recorder) error{output("hi"), input("x"), resize(10, 10)} {
		werr = errors.Join(werr, do(r))
	}
	werr = errors.Join(werr, r.Flush())
	checkFailure(t, policy, werr, &errs, errno)
	sum, err := r.Close()
	if !errors.Is(err, ErrRecordingFailed) || sum.Path != "" || sum.SHA256 != "" {
		t.Errorf("Close = %+v, %v; want no file and ErrRecordingFailed", sum, err)
	}
}

func TestUnwritableDirUnprivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; TestDiskFailures covers this with a read-only mount")
	}
	for _, policy := range []Policy{FailClosed, FailOpen} {
		name := map[Policy]string{FailClosed: "fail/read-only-closed", FailOpen: "ok/read-only-open"}[policy]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			checkUnwritable(t, dir, policy, os.ErrPermission)
		})
	}
}

// stallFile is a disk that accepts the header, then hangs until released.
type stallFile struct {
	mu     sync.Mutex
	data   bytes.Buffer
	writes int
	gate   chan struct{}
}

func (f *stallFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.writes++
	first := f.writes == 1
	f.mu.Unlock()
	if !first {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data.Write(p)
}

func (f *stallFile) Truncate(int64) error { return nil }
func (f *stallFile) Sync() error          { return nil }
func (f *stallFile) Close() error         { return nil }

func TestRecorderStalledDisk(t *testing.T) {
	for _, policy := range []Policy{FailClosed, FailOpen} {
		name := map[Policy]string{FailClosed: "fail/stalled-disk-closed", FailOpen: "ok/stalled-disk-open"}[policy]
		t.Run(name, func(t *testing.T) {
			f := &stallFile{gate: make(chan struct{})}
			open := func(string, int, os.FileMode) (file, error) { return f, nil }
			var errs errorLog
			r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", Policy: policy, OnError: errs.onError, Now: newClock().now, MaxStall: 200 * time.Millisecond}, open)
			if err != nil {
				t.Fatal(err)
			}
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			var werr error
			// The session's writes return although the disk does not: once
			// maxBacklog is buffered and the disk takes nothing for
			// MaxStall the recording fails instead of hanging.
			for i := 0; i < 4*maxBacklog/len(chunk) && werr == nil && len(errs.all()) == 0; i++ {
				werr = r.Output(chunk)
			}
			if policy == FailClosed && !errors.Is(werr, ErrRecordingFailed) {
				t.Errorf("Output = %v, want ErrRecordingFailed", werr)
			}
			if policy == FailOpen && werr != nil {
				t.Errorf("Output = %v, want nil", werr)
			}
			if got := errs.all(); len(got) != 1 || !errors.Is(got[0], ErrRecordingFailed) {
				t.Errorf("OnError got %v", got)
			}
			close(f.gate)
			if _, err := r.Close(); !errors.Is(err, ErrRecordingFailed) {
				t.Errorf("Close = %v, want ErrRecordingFailed", err)
			}
		})
	}
}

// TestRecorderSlowDiskSlowsOutput: output faster than the disk waits for
// it once maxBacklog is buffered, and nothing is lost or failed. (It used to
// fail the recording, ending a fast download in a recorded session.)
func TestRecorderSlowDiskSlowsOutput(t *testing.T) {
	f := &stallFile{gate: make(chan struct{})}
	open := func(string, int, os.FileMode) (file, error) { return f, nil }
	var errs errorLog
	r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", OnError: errs.onError, Now: newClock().now, MaxStall: time.Minute}, open)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	const chunks = 3 * maxBacklog / (1 << 20)
	wrote := make(chan int, chunks)
	failed := make(chan error, 1)
	go func() {
		for i := range chunks {
			if err := r.Output(chunk); err != nil {
				failed <- err
				return
			}
			wrote <- i
		}
		close(wrote)
	}()
	// The disk holds its first write: output stops at about twice
	// maxBacklog (one buffer being written, one filling) and waits.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-failed:
		t.Fatalf("Output failed while the disk was slow: %v", err)
	default:
	}
	if n := len(wrote); n >= chunks {
		t.Fatalf("all %d MiB accepted while the disk took nothing: output did not wait", n)
	}
	r.mu.Lock()
	held := cap(r.buf)
	r.mu.Unlock()
	if held > maxBacklog+2*writeChunk {
		t.Errorf("waiting output holds a buffer of %d bytes, want at most %d", held, maxBacklog+2*writeChunk)
	}
	close(f.gate)
	for range wrote {
	}
	select {
	case err := <-failed:
		t.Fatalf("Output failed: %v", err)
	default:
	}
	sum, err := r.Close()
	if err != nil || len(errs.all()) != 0 {
		t.Fatalf("Close = %v, errors %v", err, errs.all())
	}
	if got := strings.Count(f.data.String(), "x"); got != chunks<<20 {
		t.Errorf("file holds %d bytes of output, want %d", got, chunks<<20)
	}
	if sum.Bytes != int64(f.data.Len()) {
		t.Errorf("summary says %d bytes, the file holds %d", sum.Bytes, f.data.Len())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"fail/no-dir", Config{SessionID: "s-1"}},
		{"fail/unknown-policy", Config{Dir: t.TempDir(), SessionID: "s-1", Policy: Policy(7)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := New(tc.cfg); err == nil || r != nil {
				t.Fatalf("New = %v, %v; want an error", r, err)
			}
		})
	}
}

// slowFile is a disk that takes each write after a delay.
type slowFile struct {
	mu    sync.Mutex
	data  bytes.Buffer
	delay time.Duration
}

func (f *slowFile) Write(p []byte) (int, error) {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data.Write(p)
}

func (f *slowFile) Truncate(int64) error { return nil }
func (f *slowFile) Sync() error          { return nil }
func (f *slowFile) Close() error         { return nil }

// TestRecorderSlowDiskIsNotStalled: a disk that takes a backlog slower than
// MaxStall, but piece by piece, keeps the recording going; the live copy
// (Tee) gets the file in pieces no larger than writeChunk, which a live
// replica's own backlog limit (8 MiB) takes.
func TestRecorderSlowDiskIsNotStalled(t *testing.T) {
	f := &slowFile{delay: 60 * time.Millisecond}
	open := func(string, int, os.FileMode) (file, error) { return f, nil }
	var errs errorLog
	var teeMu sync.Mutex
	largest := 0
	tee := func(p []byte) {
		teeMu.Lock()
		largest = max(largest, len(p))
		teeMu.Unlock()
	}
	r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", OnError: errs.onError, Now: newClock().now,
		MaxStall: 150 * time.Millisecond, Tee: tee}, open)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte(strings.Repeat("y", 99)+"\n"), 128<<10/100)
	total := 0
	for total < 3*maxBacklog {
		if err := r.Output(chunk); err != nil {
			t.Fatalf("after %d bytes: %v", total, err)
		}
		total += len(chunk)
	}
	if _, err := r.Close(); err != nil || len(errs.all()) != 0 {
		t.Fatalf("Close = %v, errors %v", err, errs.all())
	}
	if got := strings.Count(f.data.String(), "y"); got != total/100*99 {
		t.Errorf("file holds %d bytes of output, want %d", got, total/100*99)
	}
	if largest > writeChunk {
		t.Errorf("largest piece given to Tee: %d bytes, want at most %d", largest, writeChunk)
	}
}

// TestRecorderInputPassesWaitingOutput: while output waits for the disk,
// what the person types (^C) is recorded without waiting behind it.
func TestRecorderInputPassesWaitingOutput(t *testing.T) {
	f := &stallFile{gate: make(chan struct{})}
	open := func(string, int, os.FileMode) (file, error) { return f, nil }
	r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", RecordInput: true, Now: newClock().now, MaxStall: time.Minute}, open)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	go func() {
		for range 3 * maxBacklog / len(chunk) {
			if r.Output(chunk) != nil {
				return
			}
		}
	}()
	eventually(t, 5*time.Second, "output waiting for the disk", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.buf) >= maxBacklog
	})
	typed := make(chan error, 1)
	go func() { typed <- r.Input([]byte{3}) }()
	select {
	case err := <-typed:
		if err != nil {
			t.Fatalf("Input: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("what the person typed waited for the disk")
	}
	close(f.gate)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
