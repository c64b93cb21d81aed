// Package e2e holds the end-to-end tests: they run the real binaries as
// separate processes on loopback addresses and drive them as an operator would.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir is the directory holding rampartd, rampart-agent and rampart. It is
// $RAMPART_BIN when set (make e2e points it at bin/), else a temporary
// directory that TestMain builds the binaries into, so that `go test ./e2e/`
// works alone.
var binDir string

func TestMain(m *testing.M) {
	runStubTargetIfAsked()
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (the tests start real node processes)")
		return 0
	}
	binDir = os.Getenv("RAMPART_BIN")
	if binDir != "" {
		abs, err := filepath.Abs(binDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: RAMPART_BIN:", err)
			return 1
		}
		binDir = abs
	} else {
		dir, err := os.MkdirTemp("", "rampart-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// ./cmd/... builds every main of the module into dir, named by its
		// directory, so later tests find rampart-agent and rampart too.
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "github.com/rampart-ssh/rampart/cmd/...")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build the binaries:", err)
			return 1
		}
		binDir = dir
	}
	if _, err := binary("rampartd"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// binary returns the path of one of the project's binaries in binDir.
func binary(name string) (string, error) {
	p := filepath.Join(binDir, name)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("binary %s: %w (set RAMPART_BIN to the directory holding it, or unset it to build)", name, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("binary %s is not an executable file", p)
	}
	return p, nil
}
