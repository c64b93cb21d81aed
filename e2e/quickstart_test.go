package e2e

// TestQuickstart runs docs/quickstart.md as a newcomer would: every command
// in it, as an ordinary account (dev) in a private mount namespace (its own
// /etc, /home and /run, so ~/.ssh and the account are the test's), from a
// work directory holding the clone's Makefile and scripts and the built
// binaries. `make dev` runs there with the build skipped (GO=true: the
// binaries are this run's) on the test's own loopback addresses: the doc's
// 127.0.0.1 is replaced by the node's address, and DEV_TARGET_IP gives the
// demo target one of its own, so a developer's `make dev` on this machine is
// never met. It is the proof of `make dev`: the `ssh -J` line it prints is
// the doc's, and reaches the demo target (real OpenSSH both ends, the
// target's trust set up by rampart-agent in single-user mode) after the
// device flow is approved in the dev IdP; the session's recording holds
// what was typed.
//
// The fenced blocks of the doc are marked by their info string: "sh
// quickstart" (each line a command that must exit 0), "sh
// quickstart-background" (started and left running until the output says
// "Ready."), "sh quickstart-terminal" (run in a terminal; the test approves
// the device flow as alice), "sh quickstart-session" (typed into that
// terminal's session), and "text" (output, not run). Any other block fails
// the test, so that no command goes untested.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/devidp"
)

// quickstartBlock is one fenced block of the doc.
type quickstartBlock struct {
	kind  string // quickstart, quickstart-background, ...
	lines []string
}

// parseQuickstart returns the doc's command blocks in order.
func parseQuickstart(t *testing.T, path string) []quickstartBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	fatalIf(t, err)
	var blocks []quickstartBlock
	var cur *quickstartBlock
	inText := false
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && !inText && strings.HasPrefix(line, "```"):
			info := strings.Fields(strings.TrimPrefix(line, "```"))
			switch {
			case len(info) == 1 && info[0] == "text":
				inText = true
			case len(info) == 2 && info[0] == "sh" && strings.HasPrefix(info[1], "quickstart"):
				cur = &quickstartBlock{kind: info[1]}
			default:
				t.Fatalf("%s:%d: a fenced block marked %q: mark commands \"sh quickstart…\" (see TestQuickstart) and output \"text\"", path, i+1, line)
			}
		case line == "```" && inText:
			inText = false
		case line == "```" && cur != nil:
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil && strings.TrimSpace(line) != "":
			cur.lines = append(cur.lines, line)
		}
	}
	if cur != nil || inText {
		t.Fatalf("%s: a fenced block is not closed", path)
	}
	return blocks
}

func TestQuickstart(t *testing.T) {
	repo, err := filepath.Abs("..")
	fatalIf(t, err)
	blocks := parseQuickstart(t, filepath.Join(repo, "docs", "quickstart.md"))
	ips := newIPs(t, "make dev (node, demo target)", 2)
	nodeIP, demoIP := ips[0], ips[1]
	// The account and its home live in a namespace of their own.
	ns := NewTarget(t, TargetConfig{Name: "laptop", IP: demoIP})
	ctx := context.Background()
	_, err = ns.Exec(ctx, "useradd", "-m", "-s", "/bin/bash", "dev")
	fatalIf(t, err, "useradd dev")
	// Pseudo-terminals as a Debian or systemd machine mounts them (group
	// tty, mode 620): an sshd that is not root cannot chown a session's
	// terminal, and gives up when it would have to. Some containers, this
	// test's machine among them, mount /dev/pts without gid=5.
	_, err = ns.Exec(ctx, "sh", "-c", "mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts && mount --bind /dev/pts/ptmx /dev/ptmx")
	fatalIf(t, err, "mount the namespace's own /dev/pts")
	work := "/home/dev/rampart"
	host := ns.Path(work) // the same directory, as this process sees it
	fatalIf(t, os.MkdirAll(filepath.Join(host, "bin"), 0o755))
	fatalIf(t, exec.Command("cp", "-a", filepath.Join(repo, "Makefile"), filepath.Join(repo, "scripts"), host).Run(), "copy the clone")
	for _, name := range []string{"rampartd", "rampart-agent"} {
		p, err := binary(name)
		fatalIf(t, err)
		fatalIf(t, exec.Command("cp", p, filepath.Join(host, "bin", name)).Run(), "copy "+name)
	}
	_, err = ns.Exec(ctx, "chown", "-R", "dev:dev", work)
	fatalIf(t, err)

	// asDev is argv running the shell command line as dev in the clone,
	// with the environment of a login, the doc's address replaced.
	asDev := func(line string) []string {
		line = strings.ReplaceAll(line, "127.0.0.1", nodeIP)
		return []string{"setpriv", "--reuid=dev", "--regid=dev", "--init-groups", "env", "-i",
			"HOME=/home/dev", "USER=dev", "LOGNAME=dev", "PATH=" + targetPath, "LANG=C.UTF-8", "TERM=xterm-256color",
			"GO=true", "DEV_IP=" + nodeIP, "DEV_TARGET_IP=" + demoIP,
			"bash", "-c", "cd " + work + " && " + line}
	}
	run := func(line string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, waitLong)
		defer cancel()
		out, err := ns.Exec(rctx, asDev(line)...)
		fatalIf(t, err, fmt.Sprintf("quickstart command %q: %s", line, out))
	}

	var printedSSH string // the ssh -J line make dev printed
	var term *terminal
	started := time.Now()
	for _, b := range blocks {
		switch b.kind {
		case "quickstart":
			for _, line := range b.lines {
				run(line)
			}
		case "quickstart-background":
			if len(b.lines) != 1 {
				t.Fatalf("a background block holds %d commands, want 1", len(b.lines))
			}
			printedSSH = startMakeDev(t, ns, asDev(b.lines[0]), filepath.Join(host, "make-dev.out"))
			t.Logf("%s: ready after %s", b.lines[0], time.Since(started).Round(time.Millisecond))
		case "quickstart-terminal":
			if len(b.lines) != 1 {
				t.Fatalf("a terminal block holds %d commands, want 1", len(b.lines))
			}
			line := b.lines[0]
			if want := strings.ReplaceAll(strings.ReplaceAll(line, "$USER", "dev"), "127.0.0.1", nodeIP); want != printedSSH {
				t.Fatalf("make dev printed %q; the doc's command is %q", printedSSH, want)
			}
			cmd, err := ns.Command(ctx, asDev(line)...)
			fatalIf(t, err)
			term = startTerminal(t, t.TempDir(), cmd.Args)
			approveOnTerminal(t, term, "http://"+nodeIP+":"+portDevIdP)
		case "quickstart-session":
			if term == nil {
				t.Fatal("a session block before the terminal block")
			}
			term.WaitScreen(waitLong, "the shell prompt on the demo target", func(screen string) error {
				if m := exitMarker.FindStringSubmatch(screen); m != nil {
					return stopWaiting(fmt.Errorf("ssh exited %s", m[1]))
				}
				if !rePrompt.MatchString(screen) {
					return errors.New("no prompt yet")
				}
				return nil
			})
			for _, line := range b.lines {
				out, err := term.tmux("send-keys", "-t", "rampart", "-l", line+"\n")
				fatalIf(t, err, "type into the session: "+out)
			}
			screen, code := waitExit(t, term)
			if code != 0 || !strings.Contains(screen, "I am dev on the demo target") {
				t.Fatalf("the session on the demo target exited %d:\n%s", code, screen)
			}
			t.Logf("first session done after %s", time.Since(started).Round(time.Millisecond))
		default:
			t.Fatalf("block kind %q", b.kind)
		}
	}
	// The recording holds what the session printed.
	casts, err := filepath.Glob(filepath.Join(host, "data", "recordings", "*", "*.cast"))
	fatalIf(t, err)
	found := false
	for _, c := range casts {
		if b, err := os.ReadFile(c); err == nil && strings.Contains(string(b), "I am dev on the demo target") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no recording holds the session's output; recordings: %v", casts)
	}
}

// reReady is the last line make dev prints; reSSHLine its ssh -J line;
// rePrompt dev's shell prompt on the demo target.
var (
	rePrompt  = regexp.MustCompile(`(?m)(dev@[^\s:]+:~\$|bash-[0-9.]+\$)\s*$`)
	reReady   = regexp.MustCompile(`(?m)^Ready\. `)
	reSSHLine = regexp.MustCompile(`(?m)^  (ssh -J .*)$`)
)

// startMakeDev starts argv (make dev) in the namespace, its output to out,
// waits until it says it is ready and returns the ssh -J line it printed.
// It runs until the namespace is killed in t.Cleanup; its output is logged
// if the test fails.
func startMakeDev(t *testing.T, ns *Target, argv []string, out string) string {
	t.Helper()
	f, err := os.Create(out)
	fatalIf(t, err)
	defer f.Close()
	cmd, err := ns.Command(context.Background(), argv...)
	fatalIf(t, err)
	cmd.Stdout, cmd.Stderr = f, f
	fatalIf(t, cmd.Start(), "make dev")
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(out)
			t.Logf("==== make dev output:\n%s", b)
			for _, log := range []string{"data/rampartd.log", "data/demo/agent.log", "data/demo/sshd.log"} {
				if b, err := os.ReadFile(filepath.Join(filepath.Dir(out), log)); err == nil {
					t.Logf("==== %s (tail):\n%s", log, tail(string(b), 40))
				}
			}
		}
		_ = cmd.Process.Kill()
		<-done
	})
	var line string
	err = waitFor(2*waitLong, func() error {
		b, _ := os.ReadFile(out)
		select {
		case <-done:
			return stopWaiting(fmt.Errorf("make dev exited: %s", tail(string(b), 20)))
		default:
		}
		if !reReady.Match(b) {
			return errors.New("make dev is not ready yet")
		}
		m := reSSHLine.FindSubmatch(b)
		if m == nil {
			return stopWaiting(fmt.Errorf("make dev printed no ssh -J line:\n%s", b))
		}
		line = string(m[1])
		return nil
	})
	fatalIf(t, err, "make dev")
	return line
}

// approveOnTerminal waits for the device flow's link on the terminal and
// approves it in the dev IdP at idp as alice.
func approveOnTerminal(t *testing.T, term *terminal, idp string) {
	t.Helper()
	var url string
	term.WaitScreen(waitLong, "the sign-in link", func(screen string) error {
		if m := exitMarker.FindStringSubmatch(screen); m != nil {
			return stopWaiting(fmt.Errorf("ssh exited %s before showing a sign-in link", m[1]))
		}
		m := reDeviceURL.FindStringSubmatch(screen)
		if m == nil {
			return errors.New("no sign-in link on the screen yet")
		}
		if m[1] != idp+"/device" {
			return stopWaiting(fmt.Errorf("sign-in page %q, want %q", m[1], idp+"/device"))
		}
		url = m[0]
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Approve(ctx, url, "alice", "alice"), "approve the sign-in as alice")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
