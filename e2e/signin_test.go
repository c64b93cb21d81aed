package e2e

// Sign-in with the real OpenSSH client: `ssh` under a pseudo-terminal (a
// private tmux server) against a dev node, approved or denied through the dev
// IdP's real pages over HTTP, then `ssh` again with the bound key and no
// browser, and host verification through an @cert-authority line alone.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
)

// sshTimeout bounds one non-interactive ssh run.
const sshTimeout = 60 * time.Second

func TestOpenSSHDeviceFlowSignIn(t *testing.T) {
	node := StartDevNode(t, "signin", newIP(t, "signin node"))
	dir := t.TempDir()
	key := newSSHKey(t, dir, "alice")
	knownHosts := emptyFile(t, dir, "known_hosts")

	// First login: nothing is bound to the key, so the node runs the device
	// flow inside keyboard-interactive. No -q and no LogLevel: OpenSSH would
	// hide the instruction and the banner.
	start := time.Now()
	term := startTerminal(t, dir, sshCommand(node, key, knownHosts,
		[]string{"-o", "StrictHostKeyChecking=accept-new"}, "alice@"+node.IP))
	prompt := waitDevicePrompt(t, term, node)
	t.Logf("device prompt after %s: %s", time.Since(start).Round(time.Millisecond), prompt.URL)
	checkQRAbove(t, prompt)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Approve(ctx, prompt.URL, "alice", "alice"), "approve in the dev IdP")
	approved := time.Now()

	screen, code := waitExit(t, term)
	t.Logf("greeting and exit %d after %s from approval", code, time.Since(approved).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("ssh exited %d after approval, want 0; screen:\n%s", code, screen)
	}
	greeting := textAfter(screen, prompt.URL)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Signed in to Rampart as alice\b`),
		regexp.MustCompile(`unix name:\s+alice \(uid \d+\)`),
		regexp.MustCompile(`groups:\s+engineering, rampart-admins\s`),
		regexp.MustCompile(`key bound until \d{4}-\d\d-\d\dT`),
	} {
		if !want.MatchString(greeting) {
			t.Errorf("the screen after approval does not match %q:\n%s", want, greeting)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The key is bound now: the same key signs in with no browser. BatchMode
	// turns keyboard-interactive off, so a missing binding fails instead of
	// printing a prompt nobody answers; no tty, so no PTY request either.
	t.Run("ok/bound-key-whoami", func(t *testing.T) {
		start := time.Now()
		res := runSSH(t, sshCommand(node, key, knownHosts,
			[]string{"-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}, "alice@"+node.IP, "whoami", "--json"))
		t.Logf("bound-key whoami in %s", time.Since(start).Round(time.Millisecond))
		if res.code != 0 {
			t.Fatalf("ssh whoami --json exited %d, want 0; stderr:\n%s", res.code, res.stderr)
		}
		checkWhoamiAlice(t, res.stdout)
	})

	// The node presents a host certificate for the address typed, signed by
	// the cluster host CA: a known_hosts file holding only the CA's line is
	// enough, and without it (or with another CA) ssh refuses the host.
	t.Run("host-certificate", func(t *testing.T) {
		caKey, cert := scanHostCA(t, node)
		t.Logf("host certificate %q, principals %v, signed by %s", cert.KeyId, cert.ValidPrincipals, gossh.FingerprintSHA256(caKey))
		otherCA := newSSHKey(t, t.TempDir(), "other-ca")
		otherPub, err := os.ReadFile(otherCA + ".pub")
		fatalIf(t, err)
		caLine := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(caKey)))
		hostPort := "[" + node.IP + "]:" + portSSH

		cases := []struct {
			name       string
			knownHosts string
			opts       []string
			// wantErr is what ssh says when it refuses the host ("" when
			// it must accept it); "Host key verification failed" too.
			wantErr string
		}{
			// The line DESIGN.md has `rampart setup` write: host names,
			// no port. OpenSSH matches @cert-authority lines against the
			// bare host as well as [host]:port when the port is not 22,
			// and the certificate's principals against the bare host.
			{name: "ok/ca-line-for-typed-ip", knownHosts: "@cert-authority " + node.IP + ",localhost " + caLine + "\n"},
			{name: "ok/ca-line-for-ip-and-port", knownHosts: "@cert-authority " + hostPort + " " + caLine + "\n"},
			// Only 127.0.0.1 is "localhost": a node on another loopback
			// address does not claim the name (it would answer for another).
			{name: "fail/localhost-alias-on-other-loopback-ip", knownHosts: "@cert-authority localhost " + caLine + "\n",
				opts: []string{"-o", "HostKeyAlias=localhost"}, wantErr: "name is not a listed principal"},
			{name: "fail/empty-known-hosts", knownHosts: "", wantErr: "No ED25519 host key is known"},
			{name: "fail/other-ca", knownHosts: "@cert-authority " + node.IP + ",localhost " + strings.TrimSpace(string(otherPub)) + "\n",
				wantErr: "No ED25519 host key is known"},
			{name: "fail/name-not-in-certificate", knownHosts: "@cert-authority * " + caLine + "\n",
				opts: []string{"-o", "HostKeyAlias=bastion.example.com"}, wantErr: "name is not a listed principal"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				kh := filepath.Join(dir, "known_hosts")
				fatalIf(t, os.WriteFile(kh, []byte(tc.knownHosts), 0o600))
				opts := append([]string{"-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}, tc.opts...)
				res := runSSH(t, sshCommand(node, key, kh, opts, "alice@"+node.IP, "whoami", "--json"))
				if tc.wantErr == "" {
					if res.code != 0 {
						t.Fatalf("ssh exited %d with known_hosts %q, want 0; stderr:\n%s", res.code, tc.knownHosts, res.stderr)
					}
					checkWhoamiAlice(t, res.stdout)
					return
				}
				if res.code != 255 || !strings.Contains(res.stderr, tc.wantErr) || !strings.Contains(res.stderr, "Host key verification failed") {
					t.Errorf("ssh exited %d with known_hosts %q, want 255, %q and \"Host key verification failed\"; stdout:\n%s\nstderr:\n%s",
						res.code, tc.knownHosts, tc.wantErr, res.stdout, res.stderr)
				}
				if res.stdout != "" {
					t.Errorf("ssh printed %q from a host it did not verify", res.stdout)
				}
			})
		}
	})
}

func TestOpenSSHDeniedSignIn(t *testing.T) {
	node := StartDevNode(t, "denied", newIP(t, "denied node"))
	dir := t.TempDir()
	key := newSSHKey(t, dir, "bob")
	knownHosts := emptyFile(t, dir, "known_hosts")

	term := startTerminal(t, dir, sshCommand(node, key, knownHosts,
		[]string{"-o", "StrictHostKeyChecking=accept-new"}, "bob@"+node.IP))
	prompt := waitDevicePrompt(t, term, node)
	checkQRAbove(t, prompt)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Deny(ctx, prompt.URL, "bob", "bob"), "deny in the dev IdP")

	screen, code := waitExit(t, term)
	after := textAfter(screen, prompt.URL)
	if code == 0 {
		t.Errorf("ssh exited 0 after the sign-in was denied")
	}
	if !strings.Contains(after, "sign-in was denied") {
		t.Errorf("the screen after the denial does not say it was denied:\n%s", after)
	}
	if strings.Contains(after, "Signed in to Rampart") {
		t.Errorf("the screen after the denial shows a greeting:\n%s", after)
	}

	// A denial binds nothing: the key alone, with no browser, gets nowhere.
	res := runSSH(t, sshCommand(node, key, knownHosts,
		[]string{"-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}, "bob@"+node.IP, "whoami", "--json"))
	if res.code != 255 || !strings.Contains(res.stderr, "Permission denied") || res.stdout != "" {
		t.Errorf("bob's key after a denial: ssh exited %d, want 255 and \"Permission denied\"; stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
}

// devicePrompt is what the device flow showed on the terminal.
type devicePrompt struct {
	URL, Code string
	// Screen is the terminal's text when the prompt was complete.
	Screen string
}

var (
	reDeviceURL  = regexp.MustCompile(`(http://\S+/device)\?user_code=([A-Z]{4}-[A-Z]{4})`)
	reDeviceCode = regexp.MustCompile(`go to (\S+) and enter the code: ([A-Z]{4}-[A-Z]{4})`)
)

// waitDevicePrompt waits for the instruction of the device flow: the link
// with the code in it, and the page and code to type by hand.
func waitDevicePrompt(t *testing.T, term *terminal, node *DevNode) *devicePrompt {
	t.Helper()
	var p devicePrompt
	p.Screen = term.WaitScreen(waitLong, "the sign-in link and code", func(screen string) error {
		if m := exitMarker.FindStringSubmatch(screen); m != nil {
			return stopWaiting(fmt.Errorf("ssh exited %s before showing a sign-in link", m[1]))
		}
		u := reDeviceURL.FindStringSubmatch(screen)
		c := reDeviceCode.FindStringSubmatch(screen)
		if u == nil || c == nil {
			return errors.New("no sign-in link and code on the screen yet")
		}
		if want := node.IdPURL + "/device"; u[1] != want || c[1] != want {
			return stopWaiting(fmt.Errorf("sign-in pages %q and %q, want %q", u[1], c[1], want))
		}
		if u[2] != c[2] {
			return stopWaiting(fmt.Errorf("the link carries code %s, the text says %s", u[2], c[2]))
		}
		p.URL, p.Code = u[0], c[2]
		return nil
	})
	return &p
}

// checkQRAbove checks that a QR code of the sign-in link, in Unicode half
// blocks, is on the screen above the link. The expected picture is rendered
// with the QR library the node uses, at every recovery level and in both
// colourings, so the check does not depend on those choices.
func checkQRAbove(t *testing.T, p *devicePrompt) {
	t.Helper()
	screen := trimLines(p.Screen)
	urlAt := strings.Index(screen, p.URL)
	for _, level := range []qrcode.RecoveryLevel{qrcode.Low, qrcode.Medium, qrcode.High, qrcode.Highest} {
		q, err := qrcode.New(p.URL, level)
		fatalIf(t, err)
		for _, inverse := range []bool{true, false} {
			art := strings.Trim(trimLines(q.ToSmallString(inverse)), "\n")
			if at := strings.Index(screen, art); at >= 0 && at < urlAt {
				return
			}
		}
	}
	if !strings.ContainsAny(screen[:urlAt], "█▀▄") {
		t.Errorf("no QR code (Unicode blocks) above the sign-in link:\n%s", p.Screen)
		return
	}
	t.Errorf("the blocks above the sign-in link are not a QR code of %s:\n%s", p.URL, p.Screen)
}

// textAfter returns what follows the first mark in screen (all of screen if
// the mark scrolled away).
func textAfter(screen, mark string) string {
	if _, after, ok := strings.Cut(screen, mark); ok {
		return after
	}
	return screen
}

// trimLines drops trailing spaces from every line: terminals do not keep
// them apart from blank cells.
func trimLines(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// checkWhoamiAlice checks `whoami --json` output: one line of JSON naming
// alice, an administrator, with a key binding that expires in the future.
func checkWhoamiAlice(t *testing.T, stdout string) {
	t.Helper()
	if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("whoami --json printed %q, want one line", stdout)
	}
	var who struct {
		Login          string                  `json:"login"`
		Email          string                  `json:"email"`
		UnixName       string                  `json:"unix_name"`
		UID            uint32                  `json:"uid"`
		Groups         []string                `json:"groups"`
		Admin          bool                    `json:"admin"`
		BindingExpires string                  `json:"binding_expires"`
		Bindings       []frontdoor.BindingView `json:"bindings"`
		Servers        []any                   `json:"servers"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	fatalIf(t, dec.Decode(&who), "decode whoami --json "+strconv.Quote(stdout))
	if who.Login != "alice" || who.UnixName != "alice" || !who.Admin || who.Email != "alice@example.com" || who.UID < 1000 {
		t.Errorf("whoami: %+v, want login and unix name alice, email alice@example.com, admin, a uid of 1000 or above", who)
	}
	if !slices.Contains(who.Groups, "engineering") || !slices.Contains(who.Groups, "rampart-admins") {
		t.Errorf("whoami groups %v, want engineering and rampart-admins", who.Groups)
	}
	exp, err := time.Parse(time.RFC3339, who.BindingExpires)
	if err != nil {
		t.Errorf("whoami binding_expires %q: %v", who.BindingExpires, err)
	} else if left := time.Until(exp); left < 7*time.Hour || left > 8*time.Hour+time.Minute {
		t.Errorf("binding expires %s, in %s; want about 8h (the default binding_ttl)", who.BindingExpires, left.Round(time.Second))
	}
	if len(who.Bindings) != 1 || !who.Bindings[0].Current {
		t.Errorf("whoami bindings %+v, want the one key, marked as this connection's", who.Bindings)
	}
	if who.Servers == nil {
		t.Errorf("whoami has no servers list (want [] when there are none)")
	}
}

// scanHostCA fetches the node's host certificate with ssh-keyscan and
// returns its signing CA and the certificate, after checking that it
// certifies the node's own host key (the one in its data dir) for its IP.
// The CA record lives in raft and no API serves it yet.
func scanHostCA(t *testing.T, node *DevNode) (gossh.PublicKey, *gossh.Certificate) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh-keyscan", "-c", "-T", "10", "-t", "ed25519", "-p", portSSH, node.IP)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	fatalIf(t, cmd.Run(), "ssh-keyscan -c: "+stderr.String())
	var cert *gossh.Certificate
	// With -c, ssh-keyscan prints "type key" with no host name in front
	// (OpenSSH 9.2); plain keys come as "host type key".
	for line := range strings.Lines(stdout.String()) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		for i := 0; i+1 < len(f); i++ {
			if pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(f[i] + " " + f[i+1])); err == nil {
				if c, ok := pub.(*gossh.Certificate); ok {
					cert = c
				}
				break
			}
		}
	}
	if cert == nil {
		t.Fatalf("ssh-keyscan -c found no host certificate; output:\n%s\n%s", stdout.String(), stderr.String())
	}
	hostKeyPEM, err := os.ReadFile(node.HostKeyFile())
	fatalIf(t, err)
	hostKey, err := gossh.ParsePrivateKey(hostKeyPEM)
	fatalIf(t, err, node.HostKeyFile())
	switch {
	case cert.CertType != gossh.HostCert:
		t.Fatalf("the node's certificate has type %d, want a host certificate", cert.CertType)
	case !bytes.Equal(cert.Key.Marshal(), hostKey.PublicKey().Marshal()):
		t.Fatalf("the certificate certifies %s, not the node's host key %s", gossh.FingerprintSHA256(cert.Key), gossh.FingerprintSHA256(hostKey.PublicKey()))
	case bytes.Equal(cert.SignatureKey.Marshal(), cert.Key.Marshal()):
		t.Fatalf("the host certificate is self-signed")
	case !slices.Contains(cert.ValidPrincipals, node.IP):
		t.Fatalf("the host certificate names %v, not %s", cert.ValidPrincipals, node.IP)
	case time.Now().After(time.Unix(int64(cert.ValidBefore), 0)):
		t.Fatalf("the host certificate expired at %s", time.Unix(int64(cert.ValidBefore), 0))
	}
	return cert.SignatureKey, cert
}

// newSSHKey makes an ed25519 key pair with ssh-keygen and returns the
// private key's path (the public key is path.pub).
func newSSHKey(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput()
	fatalIf(t, err, "ssh-keygen: "+string(out))
	return path
}

func emptyFile(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	fatalIf(t, os.WriteFile(path, nil, 0o600))
	return path
}

// sshCommand is an OpenSSH command line that reads no ssh_config (-F
// /dev/null), trusts only knownHosts and offers only key, with opts before
// the destination and command after it.
func sshCommand(node *DevNode, key, knownHosts string, opts []string, dest string, command ...string) []string {
	args := []string{"ssh", "-F", "/dev/null", "-p", portSSH, "-i", key,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10"}
	args = append(args, opts...)
	return append(append(args, dest), command...)
}

// clientEnv is the environment of the ssh and tmux processes: a UTF-8
// locale (OpenSSH escapes the QR code's block characters otherwise), no
// agent, and no tmux of the person running the tests.
func clientEnv() []string {
	env := []string{"LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=xterm-256color", "SHELL=/bin/sh"}
	for _, k := range []string{"PATH", "HOME", "USER", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

type sshResult struct {
	code           int
	stdout, stderr string
}

// runSSH runs an ssh command line without a terminal and returns its exit
// code and output; one that outlives sshTimeout is killed and fails the test.
func runSSH(t testing.TB, argv []string) sshResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = clientEnv()
	cmd.Stdin = nil // /dev/null: nothing to answer a prompt with
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %s; stderr:\n%s", strings.Join(argv, " "), sshTimeout, stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", argv[0], err)
	}
	return sshResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// terminal is a command running under a pseudo-terminal: the only window of
// a private tmux server (its own socket, no config file), so tests never
// touch the tmux of whoever runs them. The command is followed by an exit
// marker and a sleep that keeps the window, and the screen, open.
type terminal struct {
	t      testing.TB
	socket string
}

// exitMarker is printed on the terminal with the command's exit code.
var exitMarker = regexp.MustCompile(`RAMPART-EXIT=(\d+)`)

// startTerminal runs argv in a new 200×100 terminal. The tmux server is
// killed in t.Cleanup; if the test failed, the screen is logged first.
func startTerminal(t testing.TB, dir string, argv []string) *terminal {
	t.Helper()
	term := &terminal{t: t, socket: filepath.Join(dir, "tmux.sock")}
	if len(term.socket) > 100 {
		// A unix socket's path has room for about 107 bytes; a long
		// TMPDIR would not leave it.
		short, err := os.MkdirTemp("/tmp", "rampart-tmux-")
		fatalIf(t, err)
		t.Cleanup(func() { os.RemoveAll(short) })
		term.socket = filepath.Join(short, "tmux.sock")
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	// The sleep bounds how long a tmux server outlives a test binary that
	// dies without running its cleanups.
	script := strings.Join(quoted, " ") + "; echo RAMPART-EXIT=$?; sleep 600"
	out, err := term.tmux("new-session", "-d", "-x", "200", "-y", "100", "-s", "rampart", script)
	fatalIf(t, err, "tmux new-session: "+out)
	t.Cleanup(func() {
		if t.Failed() {
			screen, err := term.Screen()
			if err != nil {
				screen = "(" + err.Error() + ")"
			}
			t.Logf("==== terminal: %s\n%s", strings.Join(argv, " "), screen)
		}
		if out, err := term.tmux("kill-server"); err != nil {
			t.Logf("cleanup: tmux kill-server: %v: %s", err, out)
		}
	})
	return term
}

func (term *terminal) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tmux", append([]string{"-u", "-S", term.socket, "-f", "/dev/null"}, args...)...)
	cmd.Env = clientEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Screen returns the terminal's text, scrollback included, wrapped lines
// joined.
func (term *terminal) Screen() (string, error) {
	out, err := term.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "rampart")
	if err != nil {
		return "", fmt.Errorf("tmux capture-pane: %w: %s", err, out)
	}
	// The rows below the cursor are blank.
	return strings.TrimRight(out, "\n") + "\n", nil
}

// WaitScreen waits until cond accepts the screen and returns that screen;
// on timeout it ends the test, showing the screen.
func (term *terminal) WaitScreen(timeout time.Duration, what string, cond func(screen string) error) string {
	term.t.Helper()
	var screen string
	err := waitFor(timeout, func() error {
		var err error
		if screen, err = term.Screen(); err != nil {
			return err
		}
		return cond(screen)
	})
	if err != nil {
		term.t.Fatalf("wait for %s on the terminal: %v\nscreen:\n%s", what, err, screen)
	}
	return screen
}

// waitExit waits for the command on the terminal to end and returns the
// screen and its exit code.
func waitExit(t testing.TB, term *terminal) (string, int) {
	t.Helper()
	var code int
	screen := term.WaitScreen(waitLong, "ssh to exit", func(screen string) error {
		m := exitMarker.FindStringSubmatch(screen)
		if m == nil {
			return errors.New("ssh is still running")
		}
		code, _ = strconv.Atoi(m[1])
		return nil
	})
	return screen, code
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
