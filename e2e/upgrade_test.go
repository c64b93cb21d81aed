package e2e

// The rolling upgrade of docs/operations.md with real processes: a
// three-node cluster started on rampartd built from an earlier commit of
// main is upgraded node by node to the build under test while alice's bound
// key signs in through OpenSSH every ~100 ms, and afterwards holds the same
// users, bindings, servers, projects and audit log.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// upgradeFromDefault is the commit of main the rolling upgrade test starts
// from unless RAMPART_UPGRADE_FROM names another (a commit, tag or branch
// the clone holds). It is "tests: one helper for a node-like TLS test
// server" (7 December 2026), the last commit of main before the node was
// re-housed into rooms (issue 12) and before SCIM, re-validation, backups
// and the ignore-if-unknown bit: the newest release a cluster may run
// before that work, with the same data dir, flags and snapshot format. Move
// it forward deliberately, to the last commit a supported cluster may run
// before the release under test.
const upgradeFromDefault = "cbe5d9bd79710bd04ac9c45580e1ef3e0a63ad7c"

const (
	// loginEvery is the interval of the login load.
	loginEvery = 100 * time.Millisecond
	// minMixedLogins is how many logins each upgraded node serves before
	// the next node is upgraded.
	minMixedLogins = 5
	// loginTimeout bounds one login of the load; one that takes longer
	// counts as failed.
	loginTimeout = 30 * time.Second
)

// buildOldRampartd builds cmd/rampartd from the commit the upgrade starts
// from (RAMPART_UPGRADE_FROM, else upgradeFromDefault) into a temporary
// directory and returns the binary and the commit. It needs git and the
// commit in this clone: a shallow clone fails the test, saying so.
func buildOldRampartd(t *testing.T) (bin, commit string) {
	t.Helper()
	ref := os.Getenv("RAMPART_UPGRADE_FROM")
	if ref == "" {
		ref = upgradeFromDefault
	}
	git := func(args ...string) (string, error) {
		var stderr bytes.Buffer
		cmd := exec.Command("git", args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatalf("the rolling upgrade test builds rampartd from commit %s of this repository, so it must run in a git clone with git installed: %v", ref, err)
	}
	commit, err = git("rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		shallow, _ := git("rev-parse", "--is-shallow-repository")
		t.Fatalf("the rolling upgrade test starts from commit %s, which this clone does not hold (shallow clone: %s); "+
			"clone with the full history (git fetch --unshallow) or set RAMPART_UPGRADE_FROM to a commit the clone holds: %v", ref, shallow, err)
	}
	src, out := t.TempDir(), t.TempDir()
	started := time.Now()
	// From the top: in a subdirectory, git archive packs only that one.
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = top
	untar := exec.Command("tar", "-x", "-C", src)
	var archiveErr, untarErr bytes.Buffer
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	pipe, err := archive.StdoutPipe()
	fatalIf(t, err)
	untar.Stdin = pipe
	fatalIf(t, untar.Start(), "tar")
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v: %s", commit, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("unpack git archive %s: %v: %s", commit, err, untarErr.String())
	}
	bin = filepath.Join(out, "rampartd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rampartd")
	build.Dir = src
	// The old tree is built as it was, with its own go.mod and go.sum.
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build rampartd at %s: %v:\n%s", commit, err, b)
	}
	t.Logf("timing: rampartd at %.12s built in %s", commit, time.Since(started).Round(time.Millisecond))
	return bin, commit
}

// loginFailure is one login of the load that did not sign alice in.
type loginFailure struct {
	node   string
	at     time.Duration // since the load started
	detail string
}

// loginLoad signs alice in with her bound key every loginEvery, with
// OpenSSH (`ssh alice@node whoami --json`, BatchMode so that a key that is
// not bound fails instead of asking for a browser), one attempt at a time,
// taking the serving nodes in turn. A node being upgraded is withdrawn from
// the load before it stops and served again once it has caught up, so every
// attempt goes to a node that is up and counts.
type loginLoad struct {
	config string // alice's ssh_config
	start  time.Time
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	idle     *sync.Cond // signalled when the attempt in flight ends
	serving  []*Node
	inFlight *Node
	attempts map[string]int
	failures []loginFailure
}

func startLoginLoad(config string, nodes []*Node) *loginLoad {
	l := &loginLoad{config: config, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		serving: slices.Clone(nodes), attempts: map[string]int{}}
	l.idle = sync.NewCond(&l.mu)
	go l.run()
	return l
}

func (l *loginLoad) run() {
	defer close(l.done)
	tick := time.NewTicker(loginEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		if len(l.serving) == 0 {
			l.mu.Unlock()
			continue
		}
		n := l.serving[i%len(l.serving)]
		l.inFlight = n
		l.mu.Unlock()

		err := l.login(n)

		l.mu.Lock()
		l.inFlight = nil
		l.attempts[n.ID]++
		if err != nil {
			l.failures = append(l.failures, loginFailure{node: n.ID, at: time.Since(l.start), detail: err.Error()})
		}
		l.idle.Broadcast()
		l.mu.Unlock()
	}
}

// login is one sign-in of alice on n, checked down to whoami's answer.
func (l *loginLoad) login(n *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", l.config, "-T", "-o", "BatchMode=yes", "alice@"+n.IP, "whoami", "--json")
	cmd.Env = clientEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ssh: %w; stderr %q", err, strings.TrimSpace(stderr.String()))
	}
	var who struct {
		Login    string `json:"login"`
		UnixName string `json:"unix_name"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &who); err != nil || who.Login != "alice" || who.UnixName != "alice" {
		return fmt.Errorf("whoami --json printed %q (%v)", stdout.String(), err)
	}
	return nil
}

// withdraw takes n out of the load and waits for an attempt on it to end.
func (l *loginLoad) withdraw(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.serving = slices.DeleteFunc(l.serving, func(s *Node) bool { return s == n })
	for l.inFlight == n {
		l.idle.Wait()
	}
}

// tried returns how many logins were tried on n so far.
func (l *loginLoad) tried(n *Node) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts[n.ID]
}

// serve puts n back in the load.
func (l *loginLoad) serve(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.serving = append(l.serving, n)
}

// end stops the load and returns the attempts by node and the failures.
func (l *loginLoad) end() (map[string]int, []loginFailure) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts, l.failures
}

// waitCaughtUp waits until n, just restarted, is what step 2 of the rolling
// upgrade in docs/operations.md waits for: it names a leader, lists itself
// as a voter, has applied every entry the others had committed when it came
// back, and is ready (/readyz: fresh, so its front door serves logins rather
// than answering that it cannot reach its cluster), and its front door
// answers.
func waitCaughtUp(c *Cluster, n *Node) error {
	var target uint64
	for _, o := range c.Others(n) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		st, err := o.API().ClusterStatus(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("status of %s: %w", o.ID, err)
		}
		target = max(target, st.CommitIndex)
	}
	err := waitFor(waitLong, func() error {
		if !n.Running() {
			return stopWaiting(fmt.Errorf("%s exited: %s", n.ID, n.exitDescription()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		st, err := n.API().ClusterStatus(ctx)
		cancel()
		if err != nil {
			return err
		}
		voter := slices.ContainsFunc(st.Members, func(m api.ClusterMember) bool { return m.ID == n.ID && m.Voter })
		if st.LeaderID == "" || !voter || st.AppliedIndex < target {
			return fmt.Errorf("%s: leader %q, voter %v, applied %d of %d", n.ID, st.LeaderID, voter, st.AppliedIndex, target)
		}
		if code, r, err := readyz(n); err != nil || code != http.StatusOK {
			return fmt.Errorf("%s: readyz %d %+v %v", n.ID, code, r, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return waitFrontDoor(n)
}

// upgradeView is the state the upgrade must keep, as the admin shell lists
// it in JSON: users, bindings, servers and projects.
type upgradeView map[string]string

func (e *revocationEnv) upgradeView(t *testing.T, node *Node) upgradeView {
	t.Helper()
	v := upgradeView{}
	for _, what := range []string{"users", "bindings", "servers", "projects"} {
		v[what] = e.admin(t, node, what, "ls", "--json").stdout
	}
	return v
}

// keeps checks that every record of before (a JSON list) is in after, by
// its id, name or fingerprint, with every field it had, unchanged: a newer
// release may add fields, and the cluster records, but not drop or change
// them.
func keeps(before, after string) error {
	var b, a []map[string]any
	if err := json.Unmarshal([]byte(before), &b); err != nil {
		return fmt.Errorf("before: %w", err)
	}
	if err := json.Unmarshal([]byte(after), &a); err != nil {
		return fmt.Errorf("after: %w", err)
	}
	key := func(r map[string]any) string {
		for _, k := range []string{"id", "fingerprint", "name"} {
			if v, ok := r[k].(string); ok && v != "" {
				return k + "=" + v
			}
		}
		return ""
	}
	now := map[string]map[string]any{}
	for _, r := range a {
		now[key(r)] = r
	}
	for _, r := range b {
		k := key(r)
		if k == "" {
			return fmt.Errorf("record %v has no id, fingerprint or name", r)
		}
		got, ok := now[k]
		if !ok {
			return fmt.Errorf("record %s is gone", k)
		}
		for f, v := range r {
			if !reflect.DeepEqual(got[f], v) {
				return fmt.Errorf("record %s: %s was %v, is %v", k, f, v, got[f])
			}
		}
	}
	return nil
}

// keepsEvent checks that the audit event after has every field of before,
// unchanged.
func keepsEvent(before, after string) error {
	var b, a map[string]any
	if err := json.Unmarshal([]byte(before), &b); err != nil {
		return fmt.Errorf("before: %w", err)
	}
	if err := json.Unmarshal([]byte(after), &a); err != nil {
		return fmt.Errorf("after: %w", err)
	}
	for f, v := range b {
		if !reflect.DeepEqual(a[f], v) {
			return fmt.Errorf("%s was %v, is %v", f, v, a[f])
		}
	}
	return nil
}

func TestRollingUpgrade(t *testing.T) {
	oldBin, from := buildOldRampartd(t)
	newBin, err := binary("rampartd")
	fatalIf(t, err)

	// The cluster on the old build, with alice bound and web-1 registered.
	e := defineDevCluster(t, "upgrade", 3)
	c := e.c
	for _, n := range c.Nodes {
		n.Bin = oldBin
	}
	e.startAll(t)
	e.aliceAndWeb1(t)
	e.aliceJumps(t, c.Nodes[1])
	// Each old node snapshots its state, so that the new build starts from
	// a snapshot the old one wrote (and the log after it), as a node that
	// has run for a while does.
	for _, n := range c.Nodes {
		e.admin(t, n, "cluster", "snapshot")
	}
	before := e.upgradeView(t, c.Nodes[1])
	auditBefore := e.auditLines(t, c.Nodes[1])
	for what, out := range before {
		if len(strings.TrimSpace(out)) < 3 {
			t.Fatalf("the old cluster lists no %s: %q", what, out)
		}
	}

	load := startLoginLoad(e.alice, c.Nodes)
	loadEnded := false
	defer func() {
		if !loadEnded {
			load.end()
		}
	}()
	// Step by step as docs/operations.md says: one node at a time, the
	// leader last, after it handed leadership to an upgraded voter.
	upgradeStarted := time.Now()
	upgraded := map[*Node]bool{}
	var mixed []string // projects created while both builds ran
	for range c.Nodes {
		leader, err := c.WaitLeader(waitLong, c.Nodes...)
		fatalIf(t, err)
		var n *Node
		for _, cand := range c.Nodes {
			if !upgraded[cand] && cand != leader {
				n = cand
				break
			}
		}
		started := time.Now()
		if n == nil {
			n = leader
			load.withdraw(n)
			e.admin(t, n, "cluster", "transfer-leadership")
			fatalIf(t, waitFor(waitLong, func() error {
				l, err := c.WaitLeader(requestTimeout, c.Nodes...)
				if err == nil && l == n {
					return errors.New(n.ID + " still leads")
				}
				return err
			}), "leadership handed over by "+n.ID)
		} else {
			load.withdraw(n)
		}
		code, err := n.Stop(waitStop)
		fatalIf(t, err)
		if code != 0 {
			t.Fatalf("%s (old build) exited %d on SIGTERM: %s", n.ID, code, n.exitDescription())
		}
		stopped := time.Now()
		n.Bin = newBin
		var args []string
		if n == c.Nodes[0] {
			args = e.n1Args
		}
		fatalIf(t, n.Start(args...), "start "+n.ID+" on the new build")
		fatalIf(t, waitCaughtUp(c, n), n.ID+" caught up on the new build")
		caughtUp := time.Now()
		if log := n.currentLog(); !strings.Contains(log, "restored from snapshot") {
			t.Errorf("%s on the new build did not start from the old build's snapshot; its log:\n%s", n.ID, log)
		}
		load.serve(n)
		upgraded[n] = true

		// The cluster runs both builds (until the last step): the upgraded
		// node signs alice in minMixedLogins times, and a change made
		// through it is committed by the others and kept to the end.
		tried := load.tried(n)
		fatalIf(t, waitFor(waitLong, func() error {
			if got := load.tried(n) - tried; got < minMixedLogins {
				return fmt.Errorf("%d logins on %s since it came back", got, n.ID)
			}
			return nil
		}))
		createProject(t, n.API(), "after-"+n.ID, api.ProjectSettings{})
		mixed = append(mixed, "after-"+n.ID)
		// Every node, old or new, applies what came through the new one.
		// (Their state digests differ while both builds run, the new one
		// holding fields and tables the old one lacks: they are compared
		// once every node runs the new build.)
		for _, o := range c.Nodes {
			fatalIf(t, waitFor(waitLong, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				defer cancel()
				_, err := o.API().Project(ctx, "after-"+n.ID)
				return err
			}), "project after-"+n.ID+" on "+o.ID)
		}
		t.Logf("timing: %s (leader: %v) upgraded in %s: withdrawn and stopped in %s, started and caught up in %s",
			n.ID, n == leader, caughtUp.Sub(started).Round(time.Millisecond),
			stopped.Sub(started).Round(time.Millisecond), caughtUp.Sub(stopped).Round(time.Millisecond))
	}
	attempts, failures := load.end()
	loadEnded = true
	total := 0
	for _, a := range attempts {
		total += a
	}
	t.Logf("logins: %d attempted (%v), %d failed, over %s (upgrade from %.12s: %s)",
		total, attempts, len(failures), time.Since(load.start).Round(time.Millisecond), from, time.Since(upgradeStarted).Round(time.Millisecond))
	for _, f := range failures {
		t.Errorf("login on %s at +%s failed: %s", f.node, f.at.Round(time.Millisecond), f.detail)
	}
	for _, n := range c.Nodes {
		if attempts[n.ID] == 0 {
			t.Errorf("no login was tried on %s", n.ID)
		}
	}

	// Nothing lost: every node applied the same log to the same state.
	st, err := c.WaitConverged(waitLong)
	fatalIf(t, err, "the upgraded nodes converge")
	t.Logf("converged at index %d, state digest %.12s", st.AppliedIndex, st.StateDigest)
	for _, n := range c.Nodes {
		after := e.upgradeView(t, n)
		for what, out := range before {
			if err := keeps(out, after[what]); err != nil {
				t.Errorf("%s on %s after the upgrade: %v\nbefore:\n%s\nafter:\n%s", what, n.ID, err, out, after[what])
			}
		}
		for _, p := range mixed {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err := n.API().Project(ctx, p)
			cancel()
			fatalIf(t, err, "project "+p+" (created while both builds ran) on "+n.ID)
		}
		auditAfter := e.auditLines(t, n)
		if n == c.Nodes[0] {
			t.Logf("audit: %d events before the upgrade, %d after", len(auditBefore), len(auditAfter))
		}
		if len(auditAfter) < len(auditBefore) {
			t.Fatalf("%s holds %d audit events, %d before the upgrade", n.ID, len(auditAfter), len(auditBefore))
		}
		for i, l := range auditBefore {
			if err := keepsEvent(l, auditAfter[i]); err != nil {
				t.Fatalf("audit event %d on %s changed: %v\nbefore: %s\nafter:  %s", i+1, n.ID, err, l, auditAfter[i])
			}
		}
		// A node that refused a command another applied has left the
		// others' state (raftstore's FSM logs each refusal).
		for i, log := range n.runLogs() {
			if strings.Contains(log, "refusing command") {
				t.Errorf("run %d of %s refused a command of the log:\n%s", i+1, n.ID, log)
			}
		}
		// e.admin fails the test unless the command exits 0.
		e.admin(t, n, "audit", "verify")
		e.aliceJumps(t, n)
	}
}

// currentLog is the standard output and error of n's current run.
func (n *Node) currentLog() string {
	p := n.current()
	if p == nil {
		return ""
	}
	return p.log()
}

// runLogs are the standard output and error of each of n's runs.
func (n *Node) runLogs() []string {
	n.mu.Lock()
	runs := slices.Clone(n.runs)
	n.mu.Unlock()
	var out []string
	for _, p := range runs {
		out = append(out, p.log())
	}
	return out
}

func (p *process) log() string {
	stdout, _ := os.ReadFile(p.stdoutPath)
	stderr, _ := os.ReadFile(p.stderrPath)
	return string(stdout) + string(stderr)
}
