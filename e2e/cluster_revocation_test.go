package e2e

// Live revocation across a cluster: three rampartd processes where people
// sign in on any node, and an administrator on one node ends sessions that
// other nodes carry. n1 bootstraps in dev mode and runs the dev IdP; n2 and
// n3 join as production nodes do (no --dev), signing people in with n1's dev
// IdP as their OIDC issuer. The target (ended within 2 s on every
// node) is logged, not asserted: the suite runs on slow shared machines.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

const (
	// revocationBound fails the test when a revoked session outlives the
	// admin command that revoked it by this much; well past the 2 s target,
	// so that only a session that is not ended at all (or ended by a slow
	// fallback) fails.
	revocationBound = 30 * time.Second
)

// revocationEnv is the cluster, the dev IdP on n1, and the ssh_config files
// of alice and bob (each offering only their own key).
type revocationEnv struct {
	c          *Cluster
	idp        string
	dir        string
	knownHosts string
	alice, bob string // ssh_config paths
	target     *Target
	// n1Args are the flags n1 starts with besides BaseArgs (--dev and its
	// config file), for a restart.
	n1Args []string
}

// startDevFirstNode defines a cluster of nodes nodes (defineDevCluster) and
// starts n1 (startFirstNode with devIdPExtra). The others are left to the
// caller to start.
func startDevFirstNode(t *testing.T, name string, nodes int, devIdPExtra string) *revocationEnv {
	t.Helper()
	e := defineDevCluster(t, name, nodes)
	e.startFirstNode(t, devIdPExtra)
	return e
}

// defineDevCluster defines (without starting) a cluster of nodes nodes on
// addresses of their own, every node signing people in with the dev IdP n1
// will run.
func defineDevCluster(t *testing.T, name string, nodes int) *revocationEnv {
	t.Helper()
	c := NewCluster(t, name, newIPs(t, name+" nodes", nodes)...)
	issuer, _ := devIdPConfig(c.Nodes[0].IP)
	// BaseArgs gives every node --oidc-issuer e.idp --oidc-client-id rampart:
	// n1 signs people in with its own dev IdP, the others with n1's.
	c.OIDCIssuer = issuer
	return &revocationEnv{c: c, idp: issuer, dir: t.TempDir()}
}

// startFirstNode starts n1 as StartDevNode starts a dev node (--dev and a
// config file moving the dev IdP to n1's IP, plus devIdPExtra in its dev_idp
// block), but with the cluster's shared KEK file, and writes the known_hosts
// file trusting the cluster's host CAs.
func (e *revocationEnv) startFirstNode(t *testing.T, devIdPExtra string) {
	t.Helper()
	c, n1 := e.c, e.c.Nodes[0]
	_, cfg := devIdPConfig(n1.IP)
	e.n1Args = []string{"--dev", "--config", filepath.Join(c.Dir, "n1.yaml")}
	fatalIf(t, os.WriteFile(e.n1Args[2], []byte(cfg+devIdPExtra), 0o600))
	fatalIf(t, n1.Start(e.n1Args...), "start n1")
	fatalIf(t, c.loadBootstrapFiles(n1), "n1 bootstrap")
	fatalIf(t, e.devNode(n1).waitSignInReady(waitLong), "n1 sign-in")
	e.knownHosts = writeKnownHosts(t, n1.API(), e.dir)
}

// startRevocationCluster starts a cluster of three (defineDevCluster and
// startAll).
func startRevocationCluster(t *testing.T) *revocationEnv {
	t.Helper()
	e := defineDevCluster(t, "revocation", 3)
	e.startAll(t)
	return e
}

// startAll starts n1 (startFirstNode), then joins the others without --dev,
// and waits until every node's SSH front door answers.
func (e *revocationEnv) startAll(t *testing.T) {
	t.Helper()
	started := time.Now()
	e.startFirstNode(t, "")
	c := e.c
	for i, n := range c.Nodes[1:] {
		fatalIf(t, n.Start("--join", c.JoinToken()), "start "+n.ID)
		fatalIf(t, c.WaitMembers(waitLong, c.Nodes[:i+2]...), "join "+n.ID)
		fatalIf(t, e.devNode(n).waitSignInReady(waitLong), n.ID+" sign-in")
	}
	t.Logf("cluster of %d nodes up in %s", len(c.Nodes), time.Since(started).Round(time.Millisecond))
}

// devNode pairs a node with the dev IdP its people sign in with (n1's, for
// every node), for the helpers written for dev nodes.
func (e *revocationEnv) devNode(n *Node) *DevNode { return &DevNode{Node: n, IdPURL: e.idp} }

// signIn makes a key for a dev IdP user (password = name) and an ssh_config
// offering only it, and binds it through the browser on node.
func (e *revocationEnv) signIn(t *testing.T, name string, node *Node) (config string) {
	t.Helper()
	var ips []string
	for _, n := range e.c.Nodes {
		ips = append(ips, n.IP)
	}
	dir := filepath.Join(e.dir, name)
	_, config = newPersonKey(t, dir, name, strings.Join(ips, " "), e.knownHosts)
	bindKey(t, dir, config, name, e.devNode(node))
	return config
}

// admin runs one admin shell command as alice on node.
func (e *revocationEnv) admin(t testing.TB, node *Node, args ...string) sshResult {
	t.Helper()
	r := runSSH(t, append([]string{"ssh", "-F", e.alice, "-T", "-o", "BatchMode=yes", "admin@" + node.IP}, args...))
	if r.code != 0 {
		t.Fatalf("admin on %s: %s: exit %d; stdout:\n%s\nstderr:\n%s", node.ID, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// bobJump is bob's ssh through node to web-1.
func (e *revocationEnv) bobJump(node *Node, extra []string, command string) []string {
	args := append([]string{"ssh", "-F", e.bob, "-J", "bob@" + node.SSHAddr()}, extra...)
	return append(args, "bob@web-1", command)
}

// activeSessionJSON is what this test reads of `sessions ls --json`.
type activeSessionJSON struct {
	ID, User, Server, Node, Status string
}

// bobsActiveSession waits until alice, on n1, sees exactly one active
// session of bob's on web-1, and returns it. n1 answers from its own
// replica, which the carrying node's write reaches a moment later.
func (e *revocationEnv) bobsActiveSession(t *testing.T) activeSessionJSON {
	t.Helper()
	var found activeSessionJSON
	err := waitFor(waitLong, func() error {
		r := e.admin(t, e.c.Nodes[0], "sessions", "ls", "--active", "--user", "bob", "--server", "web-1", "--json")
		var sessions []activeSessionJSON
		if err := json.Unmarshal([]byte(r.stdout), &sessions); err != nil {
			return stopWaiting(fmt.Errorf("sessions ls --json: %w: %q", err, r.stdout))
		}
		if len(sessions) != 1 {
			return fmt.Errorf("%d active sessions of bob on web-1: %+v", len(sessions), sessions)
		}
		found = sessions[0]
		return nil
	})
	fatalIf(t, err, "bob's session in sessions ls --active on n1")
	return found
}

// runningSSH is an ssh process that runs until something ends it; ended is
// when the process exited, taken by the goroutine that waits for it.
type runningSSH struct {
	stdout, stderr syncBuffer
	done           chan struct{}
	ended          time.Time
	err            error
}

// startRunningSSH starts argv (whose remote command prints "started" first)
// and waits until it prints it. The process is killed in t.Cleanup.
func startRunningSSH(t *testing.T, argv []string) *runningSSH {
	t.Helper()
	return startRunningSSHUntil(t, argv, "started", nil)
}

// startRunningSSHUntil is startRunningSSH waiting for marker on stdout,
// with stdin (nil: none) as the process's standard input.
func startRunningSSHUntil(t *testing.T, argv []string, marker string, stdin io.Reader) *runningSSH {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = clientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &runningSSH{done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &s.stdout, &s.stderr
	fatalIf(t, cmd.Start(), argv[0])
	go func() {
		err := cmd.Wait()
		s.ended, s.err = time.Now(), err
		close(s.done)
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	fatalIf(t, waitFor(waitLong, func() error {
		select {
		case <-s.done:
			return stopWaiting(fmt.Errorf("ssh exited: %v; stderr %q", s.err, s.stderr.String()))
		default:
		}
		if !strings.Contains(s.stdout.String(), marker) {
			return fmt.Errorf("session not started yet; stderr %q", s.stderr.String())
		}
		return nil
	}), strings.Join(argv, " "))
	return s
}

// waitEnded waits for the session to end after what was started at start
// (an admin command, which returns once its change is applied), and logs
// how long that took, the admin command's own ssh round trip included.
func (s *runningSSH) waitEnded(t *testing.T, after string, start time.Time) {
	t.Helper()
	select {
	case <-s.done:
		t.Logf("session ended %s after %s was started (%v)", s.ended.Sub(start).Round(time.Millisecond), after, s.err)
	case <-time.After(waitLong):
		t.Fatalf("the session outlived %s by %s", after, waitLong)
	}
}

// revoke runs an admin command on node, waits up to revocationBound for s
// to end, and logs how long that took: from the command's start, and from
// its return (negative when the session ended before the admin's ssh closed).
func (e *revocationEnv) revoke(t *testing.T, s *runningSSH, node *Node, args ...string) {
	t.Helper()
	what := strings.Join(args, " ")
	start := time.Now()
	e.admin(t, node, args...)
	returned := time.Now()
	select {
	case <-s.done:
	case <-time.After(time.Until(start.Add(revocationBound))):
		t.Fatalf("the session outlived %q by %s; its stderr so far: %q", what, revocationBound, s.stderr.String())
	}
	var note string
	if s.ended.Sub(start) > 2*time.Second {
		note = " (over the issue's 2 s target)"
	}
	t.Logf("timing: %s: the session's ssh exited %s after the command started, %s after it returned (%v)%s", what,
		s.ended.Sub(start).Round(time.Millisecond), s.ended.Sub(returned).Round(time.Millisecond), s.err, note)
}

func TestClusterRevocation(t *testing.T) {
	e := startRevocationCluster(t)
	n1, n2, n3 := e.c.Nodes[0], e.c.Nodes[1], e.c.Nodes[2]

	// alice binds her key on n1; the binding is the cluster's, so n3, where
	// she never signed in, lets her in without a browser (BatchMode).
	e.alice = e.signIn(t, "alice", n1)
	if r := e.admin(t, n3, "whoami"); !strings.Contains(r.stdout, "alice") {
		t.Fatalf("whoami on n3 with the key bound on n1: %q", r.stdout)
	}
	e.bob = e.signIn(t, "bob", n2)

	je := &jumpEnv{node: e.devNode(n1), dir: e.dir}
	je.setProject(t, api.ProjectSettings{})
	grant(t, je.api(), "web", "engineering")
	e.target = je.startTarget(t, "web-1", newIP(t, "web-1"), "web", je.userCA(t, "web"), true, nil)
	fatalIf(t, e.target.AddUser("bob"), "add bob to web-1")
	// Every node has applied the project, grant, server and bindings before
	// anyone relies on them.
	_, err := e.c.WaitConverged(waitLong)
	fatalIf(t, err)

	t.Run("ok/kill-on-n1-ends-session-on-n2", func(t *testing.T) {
		s := startRunningSSH(t, e.bobJump(n2, nil, "echo started; sleep 300"))
		sess := e.bobsActiveSession(t)
		if sess.Node != n2.ID {
			t.Fatalf("bob's session %s is carried by %q, want %s", sess.ID, sess.Node, n2.ID)
		}
		e.revoke(t, s, n1, "sessions", "kill", sess.ID, "--yes")
		if !strings.Contains(s.stderr.String(), "an administrator ended this session") {
			t.Errorf("bob was not told why: %q", s.stderr.String())
		}
		if s.err == nil {
			t.Errorf("ssh exited 0 after the kill; stderr %q", s.stderr.String())
		}
	})

	t.Run("ok/disable-on-n1-ends-session-on-n3", func(t *testing.T) {
		// bob never signed in on n3: his key, bound on n2, is enough.
		s := startRunningSSH(t, e.bobJump(n3, nil, "echo started; sleep 300"))
		sess := e.bobsActiveSession(t)
		if sess.Node != n3.ID {
			t.Fatalf("bob's session %s is carried by %q, want %s", sess.ID, sess.Node, n3.ID)
		}
		e.revoke(t, s, n1, "users", "disable", "bob")
		if !strings.Contains(s.stderr.String(), "your account was disabled") {
			t.Errorf("bob was not told why: %q", s.stderr.String())
		}
		if s.err == nil {
			t.Errorf("ssh exited 0 after users disable; stderr %q", s.stderr.String())
		}
		// And his bound key opens nothing, whichever node he tries.
		for _, n := range []*Node{n2, n3, n1} {
			r := runSSH(t, e.bobJump(n, []string{"-o", "BatchMode=yes"}, "true"))
			if r.code == 0 || !strings.Contains(r.stderr, "your account is disabled") {
				t.Errorf("bob on %s after being disabled: exit %d; stderr:\n%s", n.ID, r.code, r.stderr)
			}
		}
	})

	// Last, as it takes alice's own key: revoking a binding on n1 ends the
	// session opened with it on n3.
	t.Run("ok/bindings-revoke-on-n1-ends-session-on-n3", func(t *testing.T) {
		s := startRunningSSH(t, []string{"ssh", "-F", e.alice, "-J", "alice@" + n3.SSHAddr(), "alice@web-1", "echo started; sleep 300"})
		fatalIf(t, waitFor(waitLong, func() error {
			r := e.admin(t, n1, "sessions", "ls", "--active", "--user", "alice", "--server", "web-1", "--json")
			var live []activeSessionJSON
			if err := json.Unmarshal([]byte(r.stdout), &live); err != nil {
				return stopWaiting(fmt.Errorf("sessions ls --json: %w: %q", err, r.stdout))
			}
			if len(live) != 1 || live[0].Node != n3.ID {
				return fmt.Errorf("alice's active sessions on web-1: %+v, want one carried by %s", live, n3.ID)
			}
			return nil
		}), "alice's session in sessions ls --active on n1")
		e.revoke(t, s, n1, "bindings", "revoke", "--user", "alice")
		if !strings.Contains(s.stderr.String(), "sign-in of your key was revoked") {
			t.Errorf("alice was not told why: %q", s.stderr.String())
		}
	})
}
