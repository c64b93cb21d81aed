package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runBinary runs one of the project's binaries to its end (at most 30 s)
// and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	path, err := binary(name)
	fatalIf(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	// A run that gets as far as its default data dir (./data) leaves it in
	// a temporary directory, never in the source tree.
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", name, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestCommandLines: a mistyped flag or a stray argument is refused with a
// message saying what is wrong, and --help succeeds.
func TestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name, bin  string
		args       []string
		code       int
		wantStdout string
		wantStderr []string
	}{
		{"fail/rampartd-unknown-flag", "rampartd", []string{"--bogus"}, 2, "", []string{"rampartd: unknown flag: --bogus", "rampartd --help"}},
		{"fail/rampartd-stray-argument", "rampartd", []string{"--dev", "rampartd.yaml"}, 2, "", []string{`unexpected argument "rampartd.yaml"`, "--config FILE"}},
		{"fail/rampartd-flag-value", "rampartd", []string{"--bootstrap=maybe"}, 2, "", []string{"rampartd:", "maybe"}},
		{"ok/rampartd-help", "rampartd", []string{"--help"}, 0, "", []string{"--config"}},
		{"fail/agent-unknown-flag", "rampart-agent", []string{"--bogus"}, 2, "", []string{"rampart-agent: unknown flag: --bogus"}},
		{"fail/agent-stray-argument", "rampart-agent", []string{"enroll"}, 2, "", []string{`unexpected argument "enroll"`}},
		{"ok/agent-help", "rampart-agent", []string{"--help"}, 0, "", []string{"--token-file"}},
		{"ok/rampart-help", "rampart", []string{"--help"}, 0, "Usage:\n  rampart [command]", nil},
		{"fail/rampart-unknown-flag", "rampart", []string{"servers", "--bogus"}, 2, "", []string{"rampart: unknown flag: --bogus", "rampart servers --help"}},
		{"ok/rampart-completion-fish", "rampart", []string{"completion", "fish"}, 0, "complete -c rampart", nil},
		{"ok/rampart-version", "rampart", []string{"version"}, 0, "rampart ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, tc.bin, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.wantStdout) {
				t.Fatalf("%s %v: exit %d (want %d), stdout %q; stderr:\n%s", tc.bin, tc.args, code, tc.code, stdout, stderr)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("%s %v: stderr lacks %q:\n%s", tc.bin, tc.args, w, stderr)
				}
			}
		})
	}
}

// TestDataDirInUse: a second node started on a data directory a running
// node uses stops at once, naming the running one, instead of waiting
// forever for bolt's lock on raft.db (deaf to Ctrl-C).
func TestDataDirInUse(t *testing.T) {
	d := StartDevNode(t, "lock", newIP(t, "lock node"))
	pid := d.current().cmd.Process.Pid
	path, err := binary("rampartd")
	fatalIf(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The very command line the running node has.
	cmd := exec.CommandContext(ctx, path, append(d.BaseArgs(), "--dev", "--config", d.ConfigPath)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("second node on %s still running after 5s; stderr:\n%s", d.DataDir, stderr.String())
	}
	want := fmt.Sprintf("data dir in use (pid %d)", pid)
	if err == nil || !strings.Contains(stderr.String(), want) {
		t.Fatalf("second node: %v after %s, want a failure saying %q; stderr:\n%s", err, time.Since(start), want, stderr.String())
	}
	t.Logf("second node refused after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	if !d.Running() {
		t.Fatal("the running node stopped")
	}
}
