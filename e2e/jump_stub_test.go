package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// Environment of the stub target process (see stubTarget).
const (
	stubAddrEnv = "E2E_STUB_TARGET_ADDR"
	stubCAsEnv  = "E2E_STUB_TARGET_USER_CAS"
)

// stubTarget is an SSH server standing in for a target in the jump
// benchmarks, where thousands of sshd sessions would not fit the machine
// (three processes each, against a pid_max of 32768). It logs in users with
// a per-hop certificate from the project's user CA (principal and
// source-address checked, as sshd would) and holds every session open
// without running anything. It runs as a process of its own (this test
// binary again, see runStubTargetIfAsked): every session costs it a socket,
// and the file descriptor limit (20,000 here) would otherwise be shared with
// the benchmark's clients.
type stubTarget struct {
	cmd     *exec.Cmd
	sockets int // sockets the stub holds with no session (its listener)
}

func startStubTarget(b *testing.B, e *benchEnv, ip string) *stubTarget {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), stubAddrEnv+"="+net.JoinHostPort(ip, "22"), stubCAsEnv+"="+strings.Join(e.userCA.Keys, "\n"))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	fatalIf(b, err)
	fatalIf(b, cmd.Start(), "start the stub target")
	s := &stubTarget{cmd: cmd}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The stub prints its host key once it listens.
	hostKey, err := bufio.NewReader(out).ReadString('\n')
	fatalIf(b, err, "read the stub target's host key")
	s.sockets = s.openSockets(b)
	putServer(b, e.node.API(), benchStub, api.Server{Project: "bench", Name: benchStub, Addr: ip,
		HostKeys: []string{strings.TrimSpace(hostKey)}})
	return s
}

func (s *stubTarget) pid() int { return s.cmd.Process.Pid }

// connections is the number of connections the stub holds.
func (s *stubTarget) connections(b *testing.B) int { return s.openSockets(b) - s.sockets }

func (s *stubTarget) openSockets(b *testing.B) int {
	dir := fmt.Sprintf("/proc/%d/fd", s.pid())
	ents, err := os.ReadDir(dir)
	fatalIf(b, err)
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// runStubTargetIfAsked turns this process into the stub target when the
// benchmark started it so (TestMain calls it first). It never returns then.
func runStubTargetIfAsked() {
	addr := os.Getenv(stubAddrEnv)
	if addr == "" {
		return
	}
	if err := serveStubTarget(addr, os.Getenv(stubCAsEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "stub target:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveStubTarget(addr, caLines string) error {
	var cas []gossh.PublicKey
	for _, line := range strings.Split(caLines, "\n") {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return fmt.Errorf("user CA %q: %w", line, err)
		}
		cas = append(cas, k)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	hostKey, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	checker := &gossh.CertChecker{
		IsUserAuthority: func(auth gossh.PublicKey) bool {
			return slices.ContainsFunc(cas, func(k gossh.PublicKey) bool { return bytes.Equal(k.Marshal(), auth.Marshal()) })
		},
		SupportedCriticalOptions: []string{"source-address"},
	}
	cfg := &gossh.ServerConfig{PublicKeyCallback: checker.Authenticate}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Print(string(gossh.MarshalAuthorizedKey(hostKey.PublicKey())))
	var wg sync.WaitGroup
	for {
		nc, err := ln.Accept()
		if err != nil {
			wg.Wait()
			return err
		}
		wg.Go(func() {
			defer nc.Close()
			serveStubConn(nc, cfg)
		})
	}
}

func serveStubConn(nc net.Conn, cfg *gossh.ServerConfig) {
	sc, chans, reqs, err := gossh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go gossh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(gossh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			for r := range creqs {
				var exec struct{ Command string }
				_ = r.Reply(r.Type == "exec" || r.Type == "env", nil)
				// "true" exits at once; anything else (cat) idles until
				// the session closes.
				if r.Type == "exec" && gossh.Unmarshal(r.Payload, &exec) == nil && exec.Command == "true" {
					_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{0}))
					break
				}
			}
			ch.Close()
		}()
	}
}
