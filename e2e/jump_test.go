package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// The jump tests: the real OpenSSH client, through a dev node, to real sshd
// targets in their own mount namespaces.

// setupJump starts a dev node, binds alice's key, creates project web with
// settings, granted to engineering, and starts web-1 (sshd trusting web's
// user CA, UsePAM usePAM).
func setupJump(t *testing.T, settings api.ProjectSettings, usePAM bool) *jumpEnv {
	t.Helper()
	e := signedInEnv(t, StartDevNode(t, "jump", newIP(t, "jump node")))
	e.setProject(t, settings)
	grant(t, e.api(), "web", "engineering")
	e.target = e.startTarget(t, "web-1", newIP(t, "web-1"), "web", e.userCA(t, "web"), usePAM, nil)
	return e.jumpEnv
}

func TestJumpThroughBastion(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{AllowLocalForward: true, Recording: new(true)}, true)

	t.Run("ok/exit-code", func(t *testing.T) {
		r := e.ssh(t, nil, "alice@web-1", "exit 42")
		if r.code != 42 {
			t.Fatalf("exit code %d, want 42; stderr:\n%s", r.code, r.stderr)
		}
	})
	// A command that fails at once writes its error to stderr just before
	// its output ends: the error must reach the person (it could lose the
	// race against stdout's EOF; ten runs caught that here).
	t.Run("ok/stderr-of-a-failing-command", func(t *testing.T) {
		for i := range 10 {
			r := e.ssh(t, nil, "alice@web-1", "ls /no/such/dir")
			if r.code != 2 || !strings.Contains(r.stderr, "/no/such/dir") {
				t.Fatalf("run %d: exit %d, stderr %q; want exit 2 and ls's error", i+1, r.code, r.stderr)
			}
		}
	})
	t.Run("ok/who-and-target-log", func(t *testing.T) {
		offset := e.target.LogOffset()
		r := e.ssh(t, nil, "alice@web-1", "id -un")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
			t.Fatalf("id -un: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		// The target's sshd names the person in its log: the key ID.
		if _, err := e.target.WaitLogFrom(offset, waitLong, regexp.MustCompile(`rampart user=alice session=s-[0-9a-f]+ server=web-1`)); err != nil {
			t.Fatalf("target log does not name the person: %v\n%s", err, e.target.Log())
		}
	})
	t.Run("ok/scp-and-sftp-50MiB", func(t *testing.T) {
		src := filepath.Join(e.dir, "big")
		data := make([]byte, 50<<20)
		_, _ = rand.Read(data)
		fatalIf(t, os.WriteFile(src, data, 0o600))
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		jump := "alice@" + net.JoinHostPort(e.node.IP, portSSH)
		r := runSSH(t, []string{"scp", "-F", e.config, "-J", jump, src, "alice@web-1:big"})
		if r.code != 0 {
			t.Fatalf("scp: exit %d: %s", r.code, r.stderr)
		}
		r = e.ssh(t, nil, "alice@web-1", "sha256sum big")
		if !strings.HasPrefix(r.stdout, want) {
			t.Fatalf("sha256 on the target %q, want %s", r.stdout, want)
		}
		batch := filepath.Join(e.dir, "sftp.batch")
		back := filepath.Join(e.dir, "back")
		fatalIf(t, os.WriteFile(batch, []byte("put "+src+" big2\nget big2 "+back+"\n"), 0o600))
		r = runSSH(t, []string{"sftp", "-F", e.config, "-J", jump, "-b", batch, "alice@web-1"})
		if r.code != 0 {
			t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
		}
		got, err := os.ReadFile(back)
		fatalIf(t, err)
		if !bytes.Equal(got, data) {
			t.Fatal("sftp round trip changed the file")
		}
	})
	t.Run("ok/local-forward", func(t *testing.T) {
		port := freePort(t, "127.0.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ssh", "-F", e.config, "-J", "alice@"+net.JoinHostPort(e.node.IP, portSSH),
			"-N", "-o", "ExitOnForwardFailure=yes", "-L", fmt.Sprintf("127.0.0.1:%d:%s:22", port, e.target.IP()), "alice@web-1")
		cmd.Env = clientEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		fatalIf(t, cmd.Start())
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		var banner string
		err := waitFor(waitLong, func() error {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, err := conn.Read(buf)
			if err != nil {
				return err
			}
			banner = string(buf[:n])
			return nil
		})
		if err != nil || !strings.HasPrefix(banner, "SSH-2.0-OpenSSH") {
			t.Fatalf("through -L: %q, %v; ssh stderr:\n%s", banner, err, stderr.String())
		}
	})
	t.Run("fail/remote-forward-not-allowed", func(t *testing.T) {
		r := e.ssh(t, []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"}, "alice@web-1", "true")
		if r.code == 0 || !strings.Contains(r.stderr, "remote port forwarding failed") {
			t.Fatalf("-R with the project forbidding it: exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
	for _, tc := range []struct {
		name, dest, want string
		opts             []string
	}{
		{"fail/another-users-login", "root@web-1", "login not permitted", nil},
		{"fail/unenrolled-host", "alice@web-9", "not an enrolled server", nil},
		{"fail/metadata-address", "alice@169.254.169.254", "metadata service", nil},
		// Another port than the SSH front door's, so that it is the node,
		// not ssh, that sees a request for itself.
		{"fail/the-node-itself", "alice@" + e.node.IP, "this bastion itself", []string{"-p", portAPI}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ssh(t, append([]string{"-o", "BatchMode=yes"}, tc.opts...), tc.dest, "true")
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("ssh -J … %s: exit %d, want a refusal saying %q; stderr:\n%s", tc.dest, r.code, tc.want, r.stderr)
			}
		})
	}
	t.Run("fail/wrong-host-key", func(t *testing.T) {
		other, err := gossh.NewPublicKey(mustEd25519(t))
		fatalIf(t, err)
		e.startTarget(t, "web-2", newIP(t, "web-2"), "web", e.userCA(t, "web"), true, other)
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-2", "true")
		if r.code == 0 || !strings.Contains(r.stderr, "host key does not match") {
			t.Fatalf("target with the wrong host key: exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("ok/grant-revoked-mid-session", func(t *testing.T) {
		s := startRunningSSH(t, []string{"ssh", "-F", e.config, "-J", "alice@" + net.JoinHostPort(e.node.IP, portSSH), "alice@web-1", "echo started; sleep 300"})
		revoked := time.Now()
		revoke(t, e.api(), "web", "engineering")
		s.waitEnded(t, "the grant's revocation", revoked)
		if !strings.Contains(s.stderr.String(), "revoked") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
		grant(t, e.api(), "web", "engineering")
	})
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustEd25519(t testing.TB) ed25519.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	return pub
}

// TestJumpRecordedSessionWithoutPAM runs an interactive session through the
// bastion to a target whose sshd has UsePAM no, and plays its recording back
// with asciinema.
func TestJumpRecordedSessionWithoutPAM(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{Recording: new(true)}, false)
	termDir := filepath.Join(e.dir, "interactive")
	fatalIf(t, os.Mkdir(termDir, 0o700))
	term := startTerminal(t, termDir, []string{"ssh", "-F", e.config, "-J", "alice@" + net.JoinHostPort(e.node.IP, portSSH), "-t", "alice@web-1"})
	term.WaitScreen(waitLong, "a shell prompt on web-1", func(screen string) error {
		if m := exitMarker.FindStringSubmatch(screen); m != nil {
			return stopWaiting(fmt.Errorf("ssh exited %s", m[1]))
		}
		if !strings.Contains(screen, "alice@") && !strings.Contains(screen, "$") {
			return fmt.Errorf("no prompt yet")
		}
		return nil
	})
	out, err := term.tmux("send-keys", "-t", "rampart", "echo hello-$((6*7))", "Enter")
	fatalIf(t, err, out)
	term.WaitScreen(waitLong, "the command's output", func(screen string) error {
		if !strings.Contains(screen, "hello-42") {
			return fmt.Errorf("no output yet")
		}
		return nil
	})
	out, err = term.tmux("send-keys", "-t", "rampart", "exit", "Enter")
	fatalIf(t, err, out)
	if screen, code := waitExit(t, term); code != 0 {
		t.Fatalf("interactive session exited %d:\n%s", code, screen)
	}

	var cast string
	fatalIf(t, waitFor(waitLong, func() error {
		matches, _ := filepath.Glob(filepath.Join(e.node.DataDir, "recordings", "*", "*.cast"))
		if len(matches) != 1 {
			return fmt.Errorf("%d recordings", len(matches))
		}
		cast = matches[0]
		return nil
	}), "find the recording")
	// asciinema cat needs a terminal of its own (it opens /dev/tty):
	// script(1) gives it one.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qec", "asciinema cat "+cast, "/dev/null")
	cmd.Env = clientEnv()
	played, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(played), "hello-42") {
		t.Fatalf("asciinema cat %s: %v; output:\n%s", cast, err, played)
	}
}
