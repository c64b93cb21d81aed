package e2e

// Deprovisioning through SCIM, with real parts: a dev node (and its dev
// IdP), a target in its own namespaces with OpenSSH's sshd and a real
// agent, OpenSSH's ssh for the person, and the SCIM calls over HTTPS with a
// provisioning token made in the admin shell (client/). bob has a live
// `ssh -J` session when the IdP deactivates him as Okta does (a path-less
// PATCH {"active": false}): the session must end within 2 s, his account on
// the target must be locked within 5 s (through the agent's long-poll), and
// his next sign-in is refused in the IdP's words. The benchmark repeats the
// deactivation and reports p50 and max (docs/benchmarks.md):
//
//	RAMPART_BIN=/path/to/bin go test -run '^$' -bench SCIMDeprovision -benchtime 20x -timeout 20m ./e2e/

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/devidp"
)

// The bounds from the IdP's deactivation.
const (
	scimSessionBound = 2 * time.Second
	scimLockBound    = 5 * time.Second
)

type scimEnv struct {
	node       *DevNode
	dir        string
	knownHosts string
	hostCA     []gossh.PublicKey
	// alice is the administrator (admin shell); bob is deprovisioned.
	aliceConfig string
	bobConfig   string
	bobSigner   gossh.Signer
	tg          *Target
	ag          *runningAgent
	sc          *client.Client
	bobID       string
}

func setupSCIM(tb testing.TB) *scimEnv {
	tb.Helper()
	node := StartDevNodeWith(tb, "scim", newIP(tb, "scim node"), "  poll_interval: 1s\n")
	e := &scimEnv{node: node, dir: tb.TempDir()}
	c := node.API()
	e.knownHosts = writeKnownHosts(tb, c, e.dir)
	for _, k := range []api.CAKeys{nodeHostCAKeys(tb, c), hostCAKeys(tb, c)} {
		for _, line := range k.Keys {
			e.hostCA = append(e.hostCA, parseAuthorizedKey(tb, line))
		}
	}
	_, e.aliceConfig, _ = e.person(tb, "alice")
	_, e.bobConfig, e.bobSigner = e.person(tb, "bob")
	createProject(tb, c, "web", api.ProjectSettings{})
	grant(tb, c, "web", "engineering")
	token := strings.TrimSpace(e.admin(tb, "tokens", "create", "web", "--uses", "1", "--quiet").stdout)
	e.tg, e.ag = startAgentTarget(tb, node, "web-1", newIP(tb, "web-1"), token)
	e.ag.waitApplied(tb, "bob's account on web-1", hasAccount(e.tg, "bob"))

	secret := strings.TrimSpace(e.admin(tb, "scim", "tokens", "create", "okta", "--quiet").stdout)
	e.sc = node.NewAPI(client.WithRootCAs(node.c.CAPool()), client.WithToken(secret))
	// The IdP pushes bob, who has signed in already: SCIM links his record
	// by e-mail rather than make a second one.
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	u, err := e.sc.SCIMCreateUser(ctx, client.SCIMUser{UserName: "bob@example.com", ExternalID: "okta-bob",
		Emails: []client.SCIMEmail{{Value: "bob@example.com", Type: "work", Primary: true}}, Active: true})
	fatalIf(tb, err, "SCIM create bob")
	e.bobID = u.ID
	if !strings.HasPrefix(e.bobID, "dev-") {
		tb.Fatalf("SCIM made bob a record of its own (%s) instead of linking his sign-in record", e.bobID)
	}
	return e
}

// person makes a key and an ssh_config for a dev IdP user and binds the key
// through the device flow (x/crypto's client driving the dev IdP's pages).
func (e *scimEnv) person(tb testing.TB, name string) (key, config string, signer gossh.Signer) {
	tb.Helper()
	key, config = newPersonKey(tb, filepath.Join(e.dir, name), name, e.node.IP, e.knownHosts, "BatchMode yes")
	pem, err := os.ReadFile(key)
	fatalIf(tb, err)
	signer, err = gossh.ParsePrivateKey(pem)
	fatalIf(tb, err)
	fatalIf(tb, bindKeyInProcess(e.node.Node, name, signer, e.hostCA), "bind "+name+"'s key")
	return key, config, signer
}

// admin runs an admin shell command as alice.
func (e *scimEnv) admin(tb testing.TB, args ...string) sshResult {
	tb.Helper()
	r := runSSH(tb, append([]string{"ssh", "-F", e.aliceConfig, "-T", "admin@" + e.node.IP}, args...))
	if r.code != 0 {
		tb.Fatalf("admin %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// liveSession is bob's `ssh -J` session on web-1, running until it ends.
type liveSession struct {
	done   chan struct{}
	ended  time.Time
	stderr syncBuffer
}

func (e *scimEnv) startSession(tb testing.TB) *liveSession {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.bobConfig, "-J", "bob@"+net.JoinHostPort(e.node.IP, portSSH), "bob@web-1", "echo started; sleep 300")
	cmd.Env = clientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout syncBuffer
	s := &liveSession{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &stdout, &s.stderr
	fatalIf(tb, cmd.Start(), "ssh -J")
	go func() {
		_ = cmd.Wait()
		s.ended = time.Now()
		close(s.done)
	}()
	tb.Cleanup(func() { cancel(); <-s.done })
	fatalIf(tb, waitFor(waitLong, func() error {
		select {
		case <-s.done:
			return stopWaiting(fmt.Errorf("ssh -J exited before its session started"))
		default:
		}
		if !strings.Contains(stdout.String(), "started") {
			return fmt.Errorf("bob's session has not started yet")
		}
		return nil
	}), "bob's session on web-1")
	return s
}

// bobExpired reports whether bob's account on web-1 expires (the agent's
// lock: usermod -e 1).
func (e *scimEnv) bobExpired() (bool, error) {
	out, err := e.tg.Exec(context.Background(), "getent", "shadow", "bob")
	f := strings.Split(strings.TrimSpace(out), ":")
	if err != nil || len(f) < 9 {
		return false, fmt.Errorf("getent shadow bob: %q, %v", out, err)
	}
	return f[7] == "1", nil
}

// deactivate deactivates bob through SCIM during a live session and
// returns how long after the PATCH was sent the session ended and his
// account on web-1 was locked.
func (e *scimEnv) deactivate(tb testing.TB) (ended, locked time.Duration) {
	tb.Helper()
	s := e.startSession(tb)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	start := time.Now()
	fatalIf(tb, e.sc.SCIMSetActive(ctx, e.bobID, false), "SCIM deactivate bob")
	err := waitFor(waitLong, func() error {
		exp, err := e.bobExpired()
		if err != nil || !exp {
			return fmt.Errorf("bob's account on web-1 does not expire yet (%v)", err)
		}
		return nil
	})
	lockedAt := time.Now()
	fatalIf(tb, err, "bob locked on web-1")
	select {
	case <-s.done:
	case <-time.After(waitLong):
		tb.Fatalf("bob's session outlived his deactivation by %s; stderr %q", waitLong, s.stderr.String())
	}
	return s.ended.Sub(start), lockedAt.Sub(start)
}

// reactivate re-activates bob through SCIM, waits for the agent to unlock
// his account and binds his key again (the deactivation revoked it).
func (e *scimEnv) reactivate(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	fatalIf(tb, e.sc.SCIMSetActive(ctx, e.bobID, true), "SCIM re-activate bob")
	fatalIf(tb, waitFor(waitLong, func() error {
		if exp, err := e.bobExpired(); err != nil || exp {
			return fmt.Errorf("bob's account on web-1 still expires (%v)", err)
		}
		return nil
	}), "bob unlocked on web-1")
	fatalIf(tb, bindKeyInProcess(e.node.Node, "bob", e.bobSigner, e.hostCA), "bind bob's key again")
}

func TestSCIMDeprovision(t *testing.T) {
	e := setupSCIM(t)
	uid, err := e.tg.Exec(context.Background(), "id", "-u", "bob")
	fatalIf(t, err, "bob's uid")
	ended, locked := e.deactivate(t)
	t.Logf("SCIM deactivation: bob's session ended after %s, his account on web-1 locked after %s",
		ended.Round(time.Millisecond), locked.Round(time.Millisecond))
	if ended > scimSessionBound {
		t.Errorf("the session ended %s after the deactivation, over %s", ended.Round(time.Millisecond), scimSessionBound)
	}
	if locked > scimLockBound {
		t.Errorf("the account was locked %s after the deactivation, over %s", locked.Round(time.Millisecond), scimLockBound)
	}
	// His next sign-in, through the browser with OpenSSH, is refused in
	// the IdP's words.
	term := startTerminal(t, filepath.Join(e.dir, "bob"), []string{"ssh", "-F", e.bobConfig, "-o", "BatchMode=no", "bob@" + e.node.IP})
	prompt := waitDevicePrompt(t, term, e.node)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Approve(ctx, prompt.URL, "bob", "bob"), "approve bob")
	screen, code := waitExit(t, term)
	if code == 0 || !strings.Contains(screen, "your account was deactivated in the identity provider") {
		t.Fatalf("bob's sign-in after the deactivation: exit %d\n%s", code, screen)
	}
	// Re-activation gives him back the same account.
	e.reactivate(t)
	uid2, err := e.tg.Exec(context.Background(), "id", "-u", "bob")
	fatalIf(t, err, "bob's uid after re-activation")
	if uid2 != uid {
		t.Fatalf("bob's uid %q became %q", uid, uid2)
	}
	if r := runSSH(t, []string{"ssh", "-F", e.bobConfig, "-J", "bob@" + net.JoinHostPort(e.node.IP, portSSH), "bob@web-1", "true"}); r.code != 0 {
		t.Fatalf("bob after re-activation: exit %d\n%s", r.code, r.stderr)
	}
}

// BenchmarkSCIMDeprovision measures, over b.N runs, the time from SCIM's
// deactivation PATCH to bob's live session ending and to his account on
// the target being locked; it reports p50 and max of each.
func BenchmarkSCIMDeprovision(b *testing.B) {
	e := setupSCIM(b)
	var ended, locked []time.Duration
	b.ResetTimer()
	for range b.N {
		en, lo := e.deactivate(b)
		ended, locked = append(ended, en), append(locked, lo)
		b.StopTimer()
		e.reactivate(b)
		b.StartTimer()
	}
	b.ReportMetric(ms(median(ended)), "session-p50-ms")
	b.ReportMetric(ms(percentile(ended, 1)), "session-max-ms")
	b.ReportMetric(ms(median(locked)), "lock-p50-ms")
	b.ReportMetric(ms(percentile(locked, 1)), "lock-max-ms")
}
