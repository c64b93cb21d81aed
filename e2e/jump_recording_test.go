package e2e

// Recordings through the jump, with real parts: several pty channels on one
// connection recorded apart, and recording failures. The node runs in a
// mount namespace of its own whose recordings directory is a 256 KiB tmpfs
// (nothing of this machine is touched), which the test makes read-only and
// then fills. A project that fails closed loses the session at once; one
// that fails open goes on; every failure is audited, and the node carries
// on serving.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

const failedClosedMessage = "recording failed and project web requires it"

func TestJumpRecordingFailure(t *testing.T) {
	var recordings string
	// No free-space floor: the 256 KiB disk is below any sensible one, and
	// this test is about the disk failing (recording_limits_test.go covers
	// the floor).
	node := startDevNode(t, "jump-recording", newIP(t, "jump-recording node"), "recording:\n  min_free_mib: 0\n", func(n *Node) []string {
		recordings = filepath.Join(n.DataDir, "recordings")
		return []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`mkdir -p "$1" && mount -t tmpfs -o size=256k,mode=0700 rampart-recordings "$1" && shift && exec "$@"`,
			"sh", recordings}
	})
	e := setupPolicyJumpOn(t, node)
	remount := func(t *testing.T, mode string) {
		t.Helper()
		pid := strconv.Itoa(node.current().cmd.Process.Pid)
		out, err := exec.Command("nsenter", "-t", pid, "-m", "mount", "-o", "remount,"+mode, recordings).CombinedOutput()
		fatalIf(t, err, "remount the node's recordings "+mode+": "+string(out))
	}
	// run runs command in a pty session (ssh -tt) with web recording and
	// failing open or closed.
	run := func(t *testing.T, failOpen bool, command string) sshResult {
		t.Helper()
		e.setProject(t, api.ProjectSettings{Recording: new(true), RecordingFailOpen: failOpen})
		return e.ssh(t, []string{"-tt"}, "alice@web-1", command)
	}
	// audited waits until n recording failures are in the audit log.
	audited := func(t *testing.T, n int) {
		t.Helper()
		fatalIf(t, waitFor(waitLong, func() error {
			if got := len(auditOf(t, e, "recording.fail")); got < n {
				return fmt.Errorf("%d recording.failed events in the audit log, want %d", got, n)
			}
			return nil
		}))
	}
	endedClosed := func(t *testing.T, r sshResult, never string) {
		t.Helper()
		if r.code != 255 || !strings.Contains(r.stderr, failedClosedMessage) || strings.Contains(r.stdout, never) {
			t.Fatalf("want the session ended (exit 255, %q on stderr, no %q); exit %d\nstdout:\n%.2000s\nstderr:\n%s",
				failedClosedMessage, never, r.code, r.stdout, r.stderr)
		}
	}
	ranOpen := func(t *testing.T, r sshResult, want string) {
		t.Helper()
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("want the session to run (exit 0, %q in its output); exit %d\nstdout:\n%.2000s\nstderr:\n%s", want, r.code, r.stdout, r.stderr)
		}
	}

	// Several pty channels on one connection (OpenSSH ControlMaster, VS
	// Code's terminals) each get a recording of their own.
	t.Run("ok/multiplexed-pty-sessions-recorded-apart", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{Recording: new(true)})
		dir, err := os.MkdirTemp("/tmp", "rampart-cm-") // a socket path has room for ~107 bytes
		fatalIf(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		control := []string{"-o", "ControlPath=" + filepath.Join(dir, "cm"), "-tt"}
		startRunningSSH(t, e.jumpArgv(e.config, "alice", append([]string{"-o", "ControlMaster=yes"}, control...), "alice@web-1", "echo started; sleep 300"))
		ranOpen(t, e.ssh(t, append([]string{"-o", "ControlMaster=no"}, control...), "alice@web-1", "echo second"), "second")
		if r := runSSH(t, []string{"ssh", "-F", e.config, "-o", "ControlPath=" + filepath.Join(dir, "cm"), "-O", "exit", "alice@web-1"}); r.code != 0 {
			t.Fatalf("ssh -O exit: %d\n%s", r.code, r.stderr)
		}
		var paths []string
		fatalIf(t, waitFor(waitLong, func() error {
			paths = paths[:0]
			for _, ev := range auditOf(t, e, "recording.save") {
				paths = append(paths, ev.Fields["session"]+" "+ev.Fields["path"])
			}
			if len(paths) < 2 {
				return fmt.Errorf("recordings in the audit log: %q, want two", paths)
			}
			return nil
		}))
		id := strings.Fields(paths[0])[0]
		if len(paths) != 2 || !strings.HasSuffix(paths[0], "/"+id+".cast") && !strings.HasSuffix(paths[1], "/"+id+".cast") ||
			!strings.HasSuffix(paths[0], "/"+id+"-2.cast") && !strings.HasSuffix(paths[1], "/"+id+"-2.cast") {
			t.Fatalf("recordings in the audit log: %q, want %s.cast and %s-2.cast of one session", paths, id, id)
		}
	})
	t.Run("unwritable-directory", func(t *testing.T) {
		remount(t, "ro")
		defer remount(t, "rw")
		t.Run("fail/fail-closed-refuses-the-session", func(t *testing.T) {
			endedClosed(t, run(t, false, "echo STARTED"), "STARTED")
			audited(t, 1)
		})
		t.Run("ok/fail-open-runs-unrecorded", func(t *testing.T) {
			ranOpen(t, run(t, true, "echo STARTED"), "STARTED")
			audited(t, 2)
		})
	})
	t.Run("disk-full", func(t *testing.T) {
		// 800 KB of output against 256 KiB of disk; the sleep keeps the
		// session idle after the burst, so only the failure ends it.
		t.Run("fail/fail-closed-ends-the-session", func(t *testing.T) {
			endedClosed(t, run(t, false, "head -c 600000 /dev/zero | base64; sleep 20; echo FINISHED"), "FINISHED")
			audited(t, 3)
		})
		t.Run("ok/fail-open-runs-on", func(t *testing.T) {
			ranOpen(t, run(t, true, "head -c 600000 /dev/zero | base64; echo FINISHED"), "FINISHED")
			audited(t, 4)
		})
	})
	t.Run("ok/node-serves-on", func(t *testing.T) {
		if !node.Running() {
			t.Fatalf("the node exited: %s", node.exitDescription())
		}
		// Recording off: the recordings disk is still full.
		e.setProject(t, api.ProjectSettings{Recording: new(false)})
		ranOpen(t, e.ssh(t, []string{"-tt"}, "alice@web-1", "echo ALIVE"), "ALIVE")
	})
}
