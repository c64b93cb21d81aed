package recording

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The disk-failure test re-runs itself in a child process with a private
// mount namespace (Go's exec makes its mounts private), where it may mount
// tmpfs filesystems without touching the machine's own mount table. The
// variables tell the child where, and prove it is not in the parent's
// namespace.
const (
	envParentMountNS = "RAMPART_RECORDING_TEST_PARENT_MNTNS"
	envMountBase     = "RAMPART_RECORDING_TEST_MOUNT_BASE"
)

var diskFailureCases = []struct {
	name    string
	mount   string // "full": a 64 KiB tmpfs; "ro": a read-only tmpfs
	prefill bool   // fill the tmpfs before the session starts
	policy  Policy
}{
	{"fail/disk-full-closed", "full", false, FailClosed},
	{"ok/disk-full-open", "full", false, FailOpen},
	{"fail/disk-full-at-start-closed", "full", true, FailClosed},
	{"ok/disk-full-at-start-open", "full", true, FailOpen},
	{"fail/read-only-closed", "ro", false, FailClosed},
	{"ok/read-only-open", "ro", false, FailOpen},
}

// TestDiskFailures fills a real (tiny) disk and uses a real read-only one,
// under both policies: never a panic or a hang, FailClosed surfaces the
// error, FailOpen reports it once, and what is on disk still plays and
// matches its digest.
func TestDiskFailures(t *testing.T) {
	if os.Getenv(envParentMountNS) == "" {
		runInMountNamespace(t)
		return
	}
	parentNS := os.Getenv(envParentMountNS)
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err != nil || ns == parentNS {
		t.Fatalf("not in a private mount namespace (%s, %v): refusing to mount", ns, err)
	}
	base := os.Getenv(envMountBase)
	for i, tc := range diskFailureCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, "case"+string(rune('a'+i)))
			mountTmpfs(t, dir, tc.mount == "ro")
			if tc.mount == "ro" {
				checkUnwritable(t, dir, tc.policy, syscall.EROFS)
				return
			}
			if tc.prefill {
				fill(t, dir)
				checkUnwritable(t, dir, tc.policy, syscall.ENOSPC)
				if ents, _ := os.ReadDir(filepath.Join(dir, "2026-11-25")); len(ents) != 0 {
					t.Errorf("left behind %v", ents)
				}
				return
			}
			fillWhileRecording(t, dir, tc.policy)
		})
	}
}

// fillWhileRecording records into dir until the disk is full.
func fillWhileRecording(t *testing.T, dir string, policy Policy) {
	clk := newClock()
	var errs errorLog
	r, err := New(Config{Dir: dir, SessionID: "s-full", Policy: policy, OnError: errs.onError, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("disk filling up ", 250) + "\r\n") // ~4 KiB
	var werr error
	written := 0
	// 16× the disk: FailClosed must stop the loop long before, FailOpen
	// must carry on to the end without an error.
	for written < 16*64<<10 && werr == nil {
		clk.advance(ms(10))
		if werr = r.Output(line); werr == nil {
			werr = r.Flush()
		}
		written += len(line)
	}
	if policy == FailClosed {
		if werr == nil {
			t.Fatalf("wrote %d bytes to a 64 KiB disk without an error", written)
		}
		if err := r.Resize(80, 24); !errors.Is(err, ErrRecordingFailed) {
			t.Errorf("Resize after the failure = %v, want ErrRecordingFailed", err)
		}
	}
	checkFailure(t, policy, werr, &errs, syscall.ENOSPC)
	sum, err := r.Close()
	if !errors.Is(err, ErrRecordingFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close = %v, want ErrRecordingFailed and ENOSPC", err)
	}
	checkSummary(t, sum)
	_, evs := readCast(t, sum.Path) // ends at a whole line
	if len(evs) == 0 {
		t.Error("no events survived")
	}
	if _, err := exec.LookPath("asciinema"); err == nil {
		if got := runAsciinema(t, asciinemaBin(t), "cat", sum.Path); got != outputOf(evs) {
			t.Errorf("asciinema cat printed %d bytes, want %d", len(got), len(outputOf(evs)))
		}
	}
}

// mountTmpfs mounts a 64 KiB tmpfs on dir, read-only if ro.
func mountTmpfs(t *testing.T, dir string, ro bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var flags uintptr = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
	if ro {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// fill writes to dir until it has no room left.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0}, 4096)
	for i := 0; ; i++ {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			return
		}
		if i > 1024 {
			t.Fatal("a 64 KiB tmpfs took 4 MiB")
		}
	}
}

// runInMountNamespace runs TestDiskFailures again in a child process with
// its own mount namespace, and passes on its verdict.
func runInMountNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a full and a read-only tmpfs in a private mount namespace (.ci/run runs as root); TestRecorderShortWrite and TestUnwritableDirUnprivileged cover the logic")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestDiskFailures$", "-test.count=1", "-test.v", "-test.timeout=110s")
	cmd.Env = append(os.Environ(), envParentMountNS+"="+ns, envMountBase+"="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	t.Logf("child in a private mount namespace:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, tc := range diskFailureCases {
		if !bytes.Contains(out, []byte("--- PASS: TestDiskFailures/"+tc.name+" ")) {
			t.Errorf("case %s did not pass in the child", tc.name)
		}
	}
}
