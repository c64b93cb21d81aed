package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/devidp"
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

// cliHome is a person's home directory for the rampart CLI and OpenSSH: a
// temporary $HOME (not the account's, so ssh is given its config with -F,
// as `rampart ssh` does itself), with no ssh-agent.
type cliHome struct {
	dir string
	// browserLog is where the $BROWSER script writes the links it is
	// asked to open.
	browserLog string
	// browser is that script.
	browser string
}

func newCLIHome(t *testing.T) *cliHome {
	t.Helper()
	h := &cliHome{dir: t.TempDir()}
	h.browserLog = filepath.Join(h.dir, "browser.log")
	script := filepath.Join(t.TempDir(), "browser")
	fatalIf(t, os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >> "+h.browserLog+"\n"), 0o755))
	h.browser = script
	return h
}

func (h *cliHome) path(rel string) string { return filepath.Join(h.dir, rel) }

// env is the environment of the CLI and of ssh: clientEnv with HOME, and a
// $BROWSER that only records the link.
func (h *cliHome) env() []string {
	var env []string
	for _, kv := range clientEnv() {
		if !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+h.dir, "BROWSER="+h.browser)
}

// command is argv in the person's environment, killed with the test.
func (h *cliHome) command(ctx context.Context, t *testing.T, argv ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	if argv[0] == "rampart" {
		path, err := binary("rampart")
		fatalIf(t, err)
		argv[0] = path
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = h.env(), h.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, &stdout, &stderr
}

// run runs argv to its end (at most sshTimeout) without a terminal.
func (h *cliHome) run(t *testing.T, argv ...string) sshResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd, stdout, stderr := h.command(ctx, t, argv...)
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", strings.Join(argv, " "), err)
	}
	return sshResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun is run, failing the test unless argv exits with code.
func (h *cliHome) mustRun(t *testing.T, code int, argv ...string) sshResult {
	t.Helper()
	r := h.run(t, argv...)
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d; stdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// files are the contents of the person's ssh files ("" for a missing one).
func (h *cliHome) files(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rel := range []string{".ssh/config", ".ssh/known_hosts", ".config/rampart/ssh_config"} {
		b, err := os.ReadFile(h.path(rel))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[rel] = string(b)
	}
	return out
}

// login runs `rampart login`, approves the link its $BROWSER was given in
// the dev IdP as alice, and waits for it to end.
func (h *cliHome) login(t *testing.T) sshResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd, stdout, stderr := h.command(ctx, t, "rampart", "login")
	fatalIf(t, cmd.Start(), "start rampart login")
	var link string
	fatalIf(t, waitFor(waitLong, func() error {
		b, err := os.ReadFile(h.browserLog)
		if err != nil {
			return fmt.Errorf("no link opened yet: %w", err)
		}
		link = strings.TrimSpace(string(b))
		return nil
	}), "rampart login opens the sign-in link")
	fatalIf(t, devidp.NewBrowser().Approve(ctx, link, "alice", "alice"), "approve alice")
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("rampart login: %v", err)
	}
	return sshResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestRampartCLI: a newcomer's path with the CLI and real OpenSSH. `rampart
// setup`, pinned to the cluster CA, writes ssh config around the person's
// own (a second run changes nothing); `rampart login` binds a key it
// creates, through the browser once; then plain ssh reaches web-1 (an
// agent-managed sshd) with StrictHostKeyChecking=yes and BatchMode (no
// prompt, no browser), `rampart servers -o json` lists web-1 with the
// login, `rampart ssh web-1 -- 'exit 7'` exits 7, scp copies a file, and
// `rampart setup --remove` gives the files back byte for byte.
func TestRampartCLI(t *testing.T) {
	node := StartDevNode(t, "cli", newIP(t, "cli node"))
	e := grantedEnv(t, node)
	tg, ag := startAgentTarget(t, node, "web-1", newIP(t, "web-1"), e.enrollToken(t))
	ag.waitApplied(t, "alice's account on web-1", hasAccount(tg, "alice"))

	h := newCLIHome(t)
	fatalIf(t, os.Mkdir(h.path(".ssh"), 0o700))
	userConfig := "# my own\nHost github.com\n  User git\n"
	userKnownHosts := "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" // no final newline
	fatalIf(t, os.WriteFile(h.path(".ssh/config"), []byte(userConfig), 0o600))
	fatalIf(t, os.WriteFile(h.path(".ssh/known_hosts"), []byte(userKnownHosts), 0o600))
	caPEM, err := os.ReadFile(filepath.Join(node.DataDir, "tls", "ca.crt"))
	fatalIf(t, err)
	pin := pinOf(t, caPEM)

	t0 := time.Now()
	r := h.run(t, "rampart", "setup", node.IP, "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "--fingerprint") {
		t.Fatalf("setup without a fingerprint or a terminal: exit %d, stderr %q; want 1 and --fingerprint named", r.code, r.stderr)
	}
	r = h.mustRun(t, 0, "rampart", "setup", node.IP, "--fingerprint", pin, "--yes")
	t.Logf("rampart setup: %s", time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(r.stdout, "+@cert-authority ") || !strings.Contains(r.stdout, "+Include ") {
		t.Errorf("setup showed no diff of its changes:\n%s", r.stdout)
	}
	first := h.files(t)
	if !strings.HasSuffix(first[".ssh/config"], userConfig) || !strings.HasPrefix(first[".ssh/known_hosts"], userKnownHosts+"\n") {
		t.Errorf("setup did not keep the person's lines:\n%v", first)
	}
	r = h.mustRun(t, 0, "rampart", "setup", node.IP)
	if !strings.Contains(r.stdout, "nothing to change") || r.stdout != strings.TrimSpace(r.stdout)+"\n" || strings.Contains(r.stdout, "@@") {
		t.Errorf("second setup: %q", r.stdout)
	}
	checkFiles(t, h, first, "after a second setup")

	t1 := time.Now()
	r = h.login(t)
	if r.code != 0 || !strings.Contains(r.stdout, "Signed in as alice") || !strings.Contains(r.stderr, "rampart_ed25519") {
		t.Fatalf("rampart login: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("rampart login (device flow approved by script): %s", time.Since(t1).Round(time.Millisecond))
	// The target host CA is trusted for the servers alice may reach, not
	// for every name (a server enrolled as github.com must not pass for it).
	if kh := h.files(t)[".ssh/known_hosts"]; !strings.Contains(kh, "\n@cert-authority web-1,!") || strings.Contains(kh, "@cert-authority *") {
		t.Errorf("known_hosts after login:\n%s", kh)
	}

	// Plain OpenSSH with what setup and login wrote: no prompt (BatchMode,
	// strict host keys), no browser.
	t2 := time.Now()
	r = h.mustRun(t, 0, "ssh", "-F", h.path(".ssh/config"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "web-1", "id -un")
	t.Logf("ssh web-1 through the written config: %s", time.Since(t2).Round(time.Millisecond))
	if strings.TrimSpace(r.stdout) != "alice" {
		t.Errorf("ssh web-1 id -un = %q", r.stdout)
	}

	r = h.mustRun(t, 0, "rampart", "servers", "-o", "json")
	var servers []struct{ Name, Project, Login, Command string }
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &servers), "servers -o json: "+r.stdout)
	if len(servers) != 1 || servers[0].Name != "web-1" || servers[0].Login != "alice" || servers[0].Project != "web" {
		t.Errorf("rampart servers -o json = %+v", servers)
	}
	if r = h.mustRun(t, 0, "rampart", "servers", "-l", "env=none"); !strings.Contains(r.stdout, "No servers") {
		t.Errorf("servers -l env=none: %q", r.stdout)
	}
	h.mustRun(t, 7, "rampart", "ssh", "web-1", "--", "exit 7")
	fatalIf(t, os.WriteFile(h.path("hello.txt"), []byte("hello from the laptop\n"), 0o600))
	h.mustRun(t, 0, "rampart", "scp", h.path("hello.txt"), "web-1:hello.txt")
	if r = h.mustRun(t, 0, "rampart", "ssh", "web-1", "--", "cat hello.txt"); r.stdout != "hello from the laptop\n" {
		t.Errorf("the file scp copied holds %q", r.stdout)
	}
	if r = h.mustRun(t, 0, "rampart", "status"); !strings.Contains(r.stdout, "bound until") || !strings.Contains(r.stdout, "~/.ssh is set up") ||
		!strings.Contains(r.stdout, "current host CAs") {
		t.Errorf("rampart status:\n%s", r.stdout)
	}

	r = h.mustRun(t, 0, "rampart", "setup", "--remove", "--yes")
	checkFiles(t, h, map[string]string{".ssh/config": userConfig, ".ssh/known_hosts": userKnownHosts, ".config/rampart/ssh_config": ""}, "after setup --remove")
}

// checkFiles: the person's files hold want, byte for byte.
func checkFiles(t *testing.T, h *cliHome, want map[string]string, when string) {
	t.Helper()
	got := h.files(t)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", when, k, got[k], v)
		}
	}
}
