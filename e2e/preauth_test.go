package e2e

// Pre-authentication under abuse, with the real OpenSSH client against a dev
// node: sign-ins abandoned mid-flow stop polling the dev IdP, and a flood of
// silent connections from one address holds that address's slots only for
// the handshake timeout, so a person there signs in within 30 s.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/devidp"
)

const (
	// preauthAbandoned is more than ssh.max_device_flows_per_ip (8): flows
	// that stopped polling no longer count against their address.
	preauthAbandoned = 10
	preauthFlood     = 200
	// preauthPerIP is the default ssh.max_preauth_per_ip.
	preauthPerIP = 16
	// preauthLoginWithin is how long after the flood the person at the
	// flooded address must be signed in, with the default
	// ssh.handshake_timeout (20s).
	preauthLoginWithin = 30 * time.Second
)

func TestPreauthFloodAndAbandonedSignIns(t *testing.T) {
	// Default ssh.* settings; the dev IdP tells clients to poll every
	// second, so an abandoned flow that kept polling would show at once.
	node := StartDevNodeWith(t, "preauth", newIP(t, "preauth node"), "  poll_interval: 1s\n")
	// The one address the abandoned sign-ins, the flood and the person's
	// sign-in all come from.
	preauthSourceIP := newIP(t, "the flooded source")
	dir := t.TempDir()
	knownHosts := emptyFile(t, dir, "known_hosts")
	signIn := func(key string) *sshProc {
		return startSSH(t, sshCommand(node, key, knownHosts,
			[]string{"-T", "-b", preauthSourceIP, "-o", "StrictHostKeyChecking=accept-new"}, "alice@"+node.IP, "whoami", "--json"))
	}

	// Sign-ins abandoned once the code is shown: ssh is killed, as when a
	// person closes the terminal.
	var abandoned []string
	for i := range preauthAbandoned {
		p := signIn(newSSHKey(t, dir, fmt.Sprintf("gone-%d", i)))
		prompt, err := p.waitPrompt(waitLong)
		fatalIf(t, err, fmt.Sprintf("abandoned sign-in %d", i))
		p.kill()
		abandoned = append(abandoned, prompt.Code)
	}
	fatalIf(t, waitFor(waitLong, func() error {
		if n := strings.Count(nodeStderr(t, node.Node), "sign-in abandoned"); n < preauthAbandoned {
			return fmt.Errorf("the node noticed %d of %d abandoned sign-ins", n, preauthAbandoned)
		}
		return nil
	}))
	// The node has stopped each flow; nothing polls for these codes now.
	before := map[string]int{}
	for _, code := range abandoned {
		before[code] = devIdPPolls(t, node, code)
	}
	t.Logf("polls of the abandoned codes when their clients left: %v", before)

	// The flood: connections that send nothing, or only a version line.
	floodStart := time.Now()
	flood := make([]net.Conn, 0, preauthFlood)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(preauthSourceIP)}, Timeout: requestTimeout}
	for i := range preauthFlood {
		nc, err := d.Dial("tcp", node.SSHAddr())
		fatalIf(t, err, fmt.Sprintf("flood connection %d", i))
		t.Cleanup(func() { nc.Close() })
		if i%2 == 1 {
			_, _ = nc.Write([]byte("SSH-2.0-flood\r\n"))
		}
		flood = append(flood, nc)
	}
	t.Logf("%d connections from %s opened in %s", preauthFlood, preauthSourceIP, time.Since(floodStart).Round(time.Millisecond))

	// The person at the flooded address: ssh is refused while the flood
	// holds the address's slots, and they try again.
	key := newSSHKey(t, dir, "alice")
	var person *sshProc
	var prompt *devicePrompt
	attempts := 0
	fatalIf(t, waitFor(preauthLoginWithin, func() error {
		attempts++
		p := signIn(key)
		pr, err := p.waitPrompt(waitLong)
		if err != nil {
			return err
		}
		person, prompt = p, pr
		return nil
	}), "sign in from the flooded address")
	t.Logf("device prompt after %s and %d attempts of ssh", time.Since(floodStart).Round(time.Millisecond), attempts)

	// The IdP polls the person's code, and no abandoned one.
	fatalIf(t, waitFor(waitLong, func() error {
		if n := devIdPPolls(t, node, prompt.Code); n < 1 {
			return errors.New("the person's code has not been polled yet")
		}
		return nil
	}))
	for _, code := range abandoned {
		if n := devIdPPolls(t, node, code); n != before[code] {
			t.Errorf("abandoned code %s was polled %d times after its client left, %s ago", code, n-before[code], time.Since(floodStart).Round(time.Second))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Approve(ctx, prompt.URL, "alice", "alice"), "approve in the dev IdP")
	code, stdout, stderr := person.wait(t, waitLong)
	took := time.Since(floodStart)
	t.Logf("signed in from the flooded address %s after the flood began", took.Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("ssh exited %d after approval; stderr:\n%s", code, stderr)
	}
	checkWhoamiAlice(t, stdout)
	if took > preauthLoginWithin {
		t.Errorf("signed in %s after the flood began, want within %s", took.Round(time.Millisecond), preauthLoginWithin)
	}

	// The server closed every connection of the flood: the refused ones at
	// once, the admitted ones (those that got its version line) at the
	// handshake timeout.
	admitted := 0
	for i, nc := range flood {
		_ = nc.SetReadDeadline(time.Now().Add(requestTimeout))
		got, err := io.ReadAll(nc)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("flood connection %d is still open %s after it was opened", i, time.Since(floodStart).Round(time.Second))
		}
		if strings.HasPrefix(string(got), "SSH-2.0-") {
			admitted++
		}
	}
	if admitted != preauthPerIP {
		t.Errorf("%d of the flood's connections were admitted, want %d (ssh.max_preauth_per_ip)", admitted, preauthPerIP)
	}

	// Refusals are logged at a bounded rate, with the count left out.
	log := nodeStderr(t, node.Node)
	lines := regexp.MustCompile(`(?m)^.*refused connection.*$`).FindAllString(log, -1)
	refused := preauthFlood - admitted + attempts - 1
	t.Logf("%d refused connections, %d log lines about them", refused, len(lines))
	if limit := 5 + int(time.Since(floodStart)/time.Second) + 1; len(lines) > limit || !strings.Contains(log, "suppressed=") {
		t.Errorf("%d log lines for %d refused connections, want at most %d and a suppressed count:\n%s", len(lines), refused, limit, strings.Join(lines, "\n"))
	}
}

// sshProc is an ssh client running without a terminal: it prints the device
// flow's instruction on stderr (OpenSSH logs it) and answers it by itself.
type sshProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
}

func startSSH(t testing.TB, argv []string) *sshProc {
	t.Helper()
	p := &sshProc{cmd: exec.Command(argv[0], argv[1:]...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = clientEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fatalIf(t, p.cmd.Start(), "start ssh")
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *sshProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends ssh at once, as a closed terminal would, and waits for it.
func (p *sshProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitPrompt waits for the sign-in link and code; an ssh that exits first
// is an error.
func (p *sshProc) waitPrompt(timeout time.Duration) (*devicePrompt, error) {
	var pr devicePrompt
	err := waitFor(timeout, func() error {
		out := p.stderr.String()
		u, c := reDeviceURL.FindStringSubmatch(out), reDeviceCode.FindStringSubmatch(out)
		if u != nil && c != nil {
			pr.URL, pr.Code = u[0], c[2]
			return nil
		}
		if p.exited() {
			return stopWaiting(fmt.Errorf("ssh exited %d before showing a sign-in code: %s", p.cmd.ProcessState.ExitCode(), strings.TrimSpace(lastLine(out))))
		}
		return errors.New("no sign-in code yet")
	})
	if err != nil {
		return nil, err
	}
	return &pr, nil
}

// wait waits for ssh to exit and returns its exit code and output.
func (p *sshProc) wait(t testing.TB, timeout time.Duration) (int, string, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("ssh still running after %s; stderr:\n%s", timeout, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode(), p.stdout.String(), p.stderr.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// devIdPPolls is how many token requests the dev IdP has had for a pending
// user code.
func devIdPPolls(t testing.TB, node *DevNode, userCode string) int {
	t.Helper()
	hc := &http.Client{Timeout: requestTimeout}
	resp, err := hc.Get(node.IdPURL + "/device/polls?user_code=" + url.QueryEscape(userCode))
	fatalIf(t, err, "dev IdP poll count")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dev IdP poll count of %s: HTTP %d", userCode, resp.StatusCode)
	}
	var body struct {
		Polls int `json:"polls"`
	}
	fatalIf(t, json.NewDecoder(resp.Body).Decode(&body), "dev IdP poll count")
	return body.Polls
}

// nodeStderr is the log of the node's current run.
func nodeStderr(t testing.TB, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Clean(n.current().stderrPath))
	fatalIf(t, err)
	return string(b)
}
