package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

// TestJumpRecordsShellWithoutTerminal runs a script through the bastion on
// a shell without a terminal (ssh -T, the script on stdin): its output is
// in the session's recording, as an exec's is, and what it was fed is not
// (the project does not record input).
func TestJumpRecordsShellWithoutTerminal(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{Recording: new(true)}, false)
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.config, "-J", "alice@"+net.JoinHostPort(e.node.IP, portSSH), "-T", "alice@web-1")
	cmd.Env = clientEnv()
	cmd.Stdin = strings.NewReader("echo script-$((6*7))\necho to-stderr-$((7*8)) >&2\nexit 3\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	_ = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(stdout.String(), "script-42") {
		t.Fatalf("ssh -T exited %d, stdout %q; stderr:\n%s", code, stdout.String(), stderr.String())
	}
	var cast []byte
	fatalIf(t, waitFor(waitLong, func() error {
		matches, _ := filepath.Glob(filepath.Join(e.node.DataDir, "recordings", "*", "*.cast"))
		for _, m := range matches {
			if b, err := os.ReadFile(m); err == nil && bytes.Contains(b, []byte("script-42")) {
				cast = b
				return nil
			}
		}
		return fmt.Errorf("no recording with the script's output among %d", len(matches))
	}), "find the recording")
	if !bytes.Contains(cast, []byte("to-stderr-56")) {
		t.Errorf("the script's stderr is not recorded:\n%s", cast)
	}
	if bytes.Contains(cast, []byte("$((6*7))")) {
		t.Errorf("the script fed on stdin is recorded though the project does not record input:\n%s", cast)
	}
}
