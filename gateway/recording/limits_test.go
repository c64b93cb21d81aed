package recording

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// A recording never grows past its cap: the write that would pass it fails
// the recording under the policy (FailClosed: the caller gets the error;
// FailOpen: reported once, the session goes on), and what is on disk plays,
// matches its digest and stays within the cap.
func TestRecorderSizeCap(t *testing.T) {
	for _, policy := range []Policy{FailClosed, FailOpen} {
		t.Run(policy.String(), func(t *testing.T) {
			var log errorLog
			const max = 8 << 10
			r, err := New(Config{Dir: t.TempDir(), SessionID: "s-cap", Policy: policy, MaxBytes: max, OnError: log.onError, Now: newClock().now})
			if err != nil {
				t.Fatal(err)
			}
			line := []byte(strings.Repeat("y", 99) + "\n")
			var failed error
			for i := 0; i < 1000 && failed == nil; i++ {
				failed = r.Output(line)
			}
			switch {
			case policy == FailClosed && !errors.Is(failed, ErrSizeLimit):
				t.Fatalf("FailClosed: Output returned %v, want ErrSizeLimit", failed)
			case policy == FailOpen && failed != nil:
				t.Fatalf("FailOpen: Output returned %v", failed)
			}
			sum, err := r.Close()
			if !errors.Is(err, ErrSizeLimit) || !errors.Is(err, ErrRecordingFailed) {
				t.Fatalf("Close: %v, want ErrSizeLimit", err)
			}
			var le *LimitError
			if !errors.As(err, &le) || !strings.Contains(le.UserMessage(), "size limit") {
				t.Fatalf("Close: %v carries no LimitError with a message for the person", err)
			}
			if errs := log.all(); len(errs) != 1 || !errors.Is(errs[0], ErrSizeLimit) {
				t.Fatalf("OnError got %v, want one ErrSizeLimit", errs)
			}
			if sum.Bytes > max || sum.Bytes < max-int64(2*len(line)) {
				t.Fatalf("recording is %d bytes, want just under the %d cap", sum.Bytes, max)
			}
			checkSummary(t, sum)
			_, evs := readCast(t, sum.Path)
			if len(evs) == 0 {
				t.Fatal("nothing recorded before the cap")
			}
		})
	}
}

// Below the free-space floor, New refuses to start a recording (FailClosed)
// and a running one fails before its next write.
func TestRecorderFreeSpaceFloor(t *testing.T) {
	var free atomic.Uint64
	free.Store(100 << 20)
	space := func() (uint64, error) { return free.Load(), nil }
	dir := t.TempDir()

	free.Store(10 << 20)
	if _, err := New(Config{Dir: dir, SessionID: "s-low", MinFreeBytes: 64 << 20, FreeSpace: space}); !errors.Is(err, ErrDiskLow) {
		t.Fatalf("New below the floor: %v, want ErrDiskLow", err)
	}
	var log errorLog
	r, err := New(Config{Dir: dir, SessionID: "s-open", Policy: FailOpen, MinFreeBytes: 64 << 20, FreeSpace: space, OnError: log.onError})
	if err != nil || r.path != "" {
		t.Fatalf("FailOpen below the floor: %v, path %q; want an unrecorded session", err, r.path)
	}
	if errs := log.all(); len(errs) != 1 || !errors.Is(errs[0], ErrDiskLow) {
		t.Fatalf("OnError got %v, want one ErrDiskLow", errs)
	}
	_, _ = r.Close()

	free.Store(100 << 20)
	r, err = New(Config{Dir: dir, SessionID: "s-run", MinFreeBytes: 64 << 20, FreeSpace: space})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Output([]byte("before\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 20)
	if err := r.Output([]byte("after\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); !errors.Is(err, ErrDiskLow) {
		t.Fatalf("Flush below the floor: %v, want ErrDiskLow", err)
	}
	sum, err := r.Close()
	if !errors.Is(err, ErrDiskLow) {
		t.Fatalf("Close: %v", err)
	}
	checkSummary(t, sum)
	if _, evs := readCast(t, sum.Path); outputOf(evs) != "before\r\n" {
		t.Fatalf("recorded %q, want only what came before the floor", outputOf(evs))
	}
}
