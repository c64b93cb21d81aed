package hostapply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs one system command, without a shell, and returns its standard
// output. A command that runs and exits non-zero returns an *ExitError.
type Runner interface {
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// ExitError is a command that exited non-zero.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// exitCode is the exit status of a command's error, or -1 when the command
// did not run to an exit.
func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// ExecRunner runs commands on this machine with os/exec. Nothing of the
// agent's environment is passed on: commands get a fixed PATH and the C
// locale, so that their output parses the same everywhere and no LD_* or
// locale variable of the agent reaches a setuid-sensitive tool.
type ExecRunner struct{}

// execPath is where commands are looked up.
const execPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxStderr bounds the stderr kept in an ExitError.
const maxStderr = 4 << 10

func (ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	name := argv[0]
	if !strings.Contains(name, "/") {
		// exec.LookPath would use the agent's PATH.
		for _, dir := range strings.Split(execPath, ":") {
			if p := dir + "/" + name; isExecutable(p) {
				name = p
				break
			}
		}
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Env = []string{"PATH=" + execPath, "LANG=C", "LC_ALL=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		s := strings.TrimSpace(stderr.String())
		if len(s) > maxStderr {
			s = s[:maxStderr] + "..."
		}
		return stdout.Bytes(), &ExitError{Argv: argv, Code: ee.ExitCode(), Stderr: s}
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return stdout.Bytes(), nil
}
