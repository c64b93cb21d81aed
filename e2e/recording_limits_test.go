package e2e

// Recordings cannot take a node down. The node runs in a mount namespace of
// its own where raft's directory and the recordings directory share one
// 40 MiB tmpfs (nothing of this machine is touched), as they share data_dir's
// disk by default. One person pours output into a recorded terminal: the
// size cap ends the session, then the free-space floor ends the next one
// before the disk is full, and a session started below the floor is refused
// with a message. Raft keeps committing throughout.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// pourCommand writes about 40 MB to the terminal, more than the node's disk,
// at about 5 MB/s: the recorder checks the free space at each flush (four a
// second), so the floor is seen before the size cap whichever comes first
// in bytes. At full speed a whole 8 MiB could arrive between two flushes,
// and the size cap then ended the session the floor should have (a CI run).
const pourCommand = "for i in $(seq 40); do yes rampart-recording-limits-fill | head -c 1000000; sleep 0.2; done; sleep 20; echo FINISHED"

func TestRecordingLimits(t *testing.T) {
	disk := t.TempDir() // a tmpfs inside the node's namespace only
	recordings := filepath.Join(disk, "recordings")
	node := startDevNode(t, "recording-limits", newIP(t, "recording-limits node"), fmt.Sprintf(`recording:
  dir: %q
  max_session_bytes: 8388608
  min_free_mib: 26
`, recordings), func(n *Node) []string {
		raftDir := filepath.Join(n.DataDir, "raft")
		return []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`mkdir -p "$1" "$2" && mount -t tmpfs -o size=40m,mode=0700 rampart-disk "$1" && mkdir "$1/raft" "$1/recordings" && ` +
				`mount --bind "$1/raft" "$2" && shift 2 && exec "$@"`,
			"sh", disk, raftDir}
	})
	e := setupPolicyJumpOn(t, node)
	e.setProject(t, api.ProjectSettings{Recording: new(true)})

	// writes commits administrator writes until stop is closed, and returns
	// how many succeeded and the failures.
	writes := func(stop <-chan struct{}) (func() (int, []string), *sync.WaitGroup) {
		var ok atomic.Int64
		var mu sync.Mutex
		var failures []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				_, err := e.api().PutProject(ctx, "web", &api.Project{
					Description: fmt.Sprintf("web servers, write %d", i), Settings: api.ProjectSettings{Recording: new(true)}})
				cancel()
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
		return func() (int, []string) {
			mu.Lock()
			defer mu.Unlock()
			return int(ok.Load()), append([]string(nil), failures...)
		}, &wg
	}
	// pour runs pourCommand in a recorded pty session while writes go on;
	// the session must end with message, and every write must commit.
	pour := func(t *testing.T, message string) {
		t.Helper()
		stop := make(chan struct{})
		result, wg := writes(stop)
		start := time.Now()
		r := e.ssh(t, []string{"-tt"}, "alice@web-1", pourCommand)
		took := time.Since(start)
		close(stop)
		wg.Wait()
		n, failures := result()
		t.Logf("session ended after %s; %d administrator writes committed meanwhile", took.Round(time.Millisecond), n)
		if r.code != 255 || !strings.Contains(r.stderr, message) || strings.Contains(r.stdout, "FINISHED") {
			t.Fatalf("want the session ended (exit 255, %q on stderr); exit %d\nstderr:\n%s", message, r.code, r.stderr)
		}
		if len(failures) > 0 || n == 0 {
			t.Fatalf("administrator writes while the session poured: %d committed, failures: %q", n, failures)
		}
		if !node.Running() {
			t.Fatalf("the node exited: %s", node.exitDescription())
		}
	}

	t.Run("fail/size-cap-ends-the-session", func(t *testing.T) {
		pour(t, "the session's recording reached its size limit and project web requires it")
	})
	t.Run("fail/free-space-floor-ends-the-session", func(t *testing.T) {
		pour(t, "the bastion's recordings disk is nearly full and project web requires it")
	})
	t.Run("fail/new-session-below-the-floor-refused", func(t *testing.T) {
		r := e.ssh(t, []string{"-tt"}, "alice@web-1", "echo STARTED")
		const msg = "the bastion's recordings disk is nearly full and project web requires it"
		if r.code != 255 || !strings.Contains(r.stderr, msg) || strings.Contains(r.stdout, "STARTED") {
			t.Fatalf("want the session refused (exit 255, %q on stderr); exit %d\nstdout:\n%s\nstderr:\n%s", msg, r.code, r.stdout, r.stderr)
		}
	})
	t.Run("ok/raft-commits-and-unrecorded-work-goes-on", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{Recording: new(true), RecordingFailOpen: true})
		r := e.ssh(t, []string{"-tt"}, "alice@web-1", "echo ALIVE")
		if r.code != 0 || !strings.Contains(r.stdout, "ALIVE") {
			t.Fatalf("fail-open session below the floor: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		fatalIf(t, waitFor(waitLong, func() error {
			if got := len(auditOf(t, e, "recording.fail")); got < 4 {
				return fmt.Errorf("%d recording.failed events in the audit log, want 4 (cap, floor, refusal, fail-open)", got)
			}
			return nil
		}))
	})
}
