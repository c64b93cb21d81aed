package e2e

// The cluster harness: rampartd nodes as real processes, each on its own
// loopback IP with the standard ports, each with its data dir under the
// test's t.TempDir(), its stdout and stderr in files whose tails are printed
// when the test fails. Every process is killed in t.Cleanup, pass or fail.
//
// Methods that wait or manage processes return errors instead of calling
// t.Fatal, so that goroutines other than the test's (a nemesis, a benchmark
// loop) can use them; tests check the errors with fatalIf.
//
// The package is Linux-only: children get Pdeathsig so that a test binary that
// dies (a panic, a -timeout) takes its nodes with it.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// Every node listens on these ports of its own loopback IP (newIP).
const (
	portSSH  = "2222"
	portAPI  = "8443"
	portRaft = "8300"
)

// Bounds for waits. They are generous because the suite runs on slow shared
// machines; a healthy cluster meets them in a fraction of the time.
const (
	// waitLong bounds one cluster-level change: a node starting, a join, an
	// election, a restarted node catching up.
	waitLong = 60 * time.Second
	// waitStop bounds a clean stop after SIGTERM.
	waitStop = 30 * time.Second
	// requestTimeout bounds one API request made by the harness.
	requestTimeout = 5 * time.Second
	// pollEvery is the interval between two checks of a waited condition.
	pollEvery = 100 * time.Millisecond
	// logTailLines is how much of each log a failing test prints.
	logTailLines = 60
)

// fatalIf ends the test when err is not nil, prefixing what (if given).
func fatalIf(t testing.TB, err error, what ...any) {
	t.Helper()
	if err != nil {
		if len(what) > 0 {
			t.Fatalf("%s: %v", fmt.Sprint(what...), err)
		}
		t.Fatal(err)
	}
}

// artifactPath returns a path for a file a failing test leaves behind for a
// person to look at (a visualization, a log). Unlike t.TempDir, whose
// contents go when the test ends, the directory stays: it is
// $RAMPART_E2E_ARTIFACTS when set, else a new directory under the system's
// temporary directory.
func artifactPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("RAMPART_E2E_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "rampart-e2e-"); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// permanentError ends a waitFor at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// stopWaiting marks err as one that no amount of waiting will cure (a process
// that exited, say), so that waitFor returns it at once.
func stopWaiting(err error) error { return &permanentError{err} }

// waitFor checks cond every pollEvery until it returns nil, and then returns
// nil. cond's error says why the condition does not hold yet; when timeout
// passes, waitFor returns the last one.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if pe := (*permanentError)(nil); errors.As(err, &pe) {
			return pe.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not true after %s: %w", timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

// Cluster is a set of rampartd nodes sharing a key-encryption key. Create it
// with NewCluster; Start bootstraps it.
type Cluster struct {
	t       testing.TB
	Name    string
	Dir     string
	KEKFile string
	Nodes   []*Node
	// OIDCIssuer is the identity provider nodes sign people in with. Cluster
	// tests that sign nobody in leave the default, an address where nothing
	// listens (nodes discover their IdP lazily, so they start without one).
	OIDCIssuer string
	// Env holds RAMPART_* settings every node process gets (the harness
	// clears the test's own).
	Env []string
	// ConfigFile, when set, is every node's --config.
	ConfigFile string

	mu sync.Mutex
	// Known once the first node has bootstrapped.
	caPEM     []byte
	caPool    *x509.CertPool
	adminTok  string
	joinToken string
}

// NewCluster defines (without starting) one node per IP, named n1, n2, ...;
// name labels the cluster in logs. It registers the cleanup that kills every
// process of the cluster and, if the test failed, prints their log tails.
func NewCluster(t testing.TB, name string, ips ...string) *Cluster {
	t.Helper()
	if _, err := binary("rampartd"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &Cluster{t: t, Name: name, Dir: dir, KEKFile: filepath.Join(dir, "kek"), OIDCIssuer: "http://127.0.0.1:1"}
	// A KEK file as an operator makes one: 32 random bytes, base64, mode 0600.
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.KEKFile, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		c.AddNode(ip)
	}
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(c.cleanup)
	return c
}

func (c *Cluster) cleanup() {
	for _, n := range c.Nodes {
		if err := n.Kill(); err != nil {
			c.t.Logf("cleanup: %s/%s: %v", c.Name, n.ID, err)
		}
	}
	for _, n := range c.Nodes {
		n.closeAPI()
	}
	if c.t.Failed() {
		for _, n := range c.Nodes {
			n.logTails()
		}
	}
}

// AddNode defines one more node of the cluster, on ip, without starting it.
func (c *Cluster) AddNode(ip string) *Node {
	id := "n" + strconv.Itoa(len(c.Nodes)+1)
	n := &Node{c: c, ID: id, IP: ip, DataDir: filepath.Join(c.Dir, id)}
	c.Nodes = append(c.Nodes, n)
	return n
}

// Node returns the node with id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Running returns the nodes whose process is running.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Others returns the cluster's nodes except those given.
func (c *Cluster) Others(except ...*Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if !slices.Contains(except, n) {
			out = append(out, n)
		}
	}
	return out
}

// Start bootstraps the first node, joins the others one at a time with the
// bootstrap join token, and waits until every node lists all of them as
// voters under one leader.
func (c *Cluster) Start() error {
	first := c.Nodes[0]
	if err := first.Start("--bootstrap"); err != nil {
		return err
	}
	if err := c.loadBootstrapFiles(first); err != nil {
		return err
	}
	for i, n := range c.Nodes[1:] {
		if err := n.Start("--join", c.JoinToken()); err != nil {
			return err
		}
		if err := c.WaitMembers(waitLong, c.Nodes[:i+2]...); err != nil {
			return fmt.Errorf("join %s: %w", n.ID, err)
		}
	}
	return nil
}

// loadBootstrapFiles waits for the files bootstrap leaves in the first node's
// data dir (the admin token is written last) and reads the CA and tokens.
func (c *Cluster) loadBootstrapFiles(n *Node) error {
	tokPath := filepath.Join(n.DataDir, "bootstrap-token")
	err := waitFor(waitLong, func() error {
		if !n.Running() {
			return stopWaiting(fmt.Errorf("%s exited during bootstrap: %s", n.ID, n.exitDescription()))
		}
		_, err := os.Stat(tokPath)
		return err
	})
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", n.ID, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(n.DataDir, "tls", "ca.crt"))
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(tokPath)
	if err != nil {
		return err
	}
	join, err := os.ReadFile(filepath.Join(n.DataDir, "join-token"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: tls/ca.crt holds no certificate", n.ID)
	}
	c.mu.Lock()
	c.caPEM, c.caPool = caPEM, pool
	c.adminTok, c.joinToken = strings.TrimSpace(string(tok)), strings.TrimSpace(string(join))
	c.mu.Unlock()
	return n.WaitHealthy(waitLong)
}

// CAPEM returns the cluster CA certificate as PEM (after bootstrap).
func (c *Cluster) CAPEM() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caPEM
}

// CAPool returns the cluster CA as a pool (after bootstrap).
func (c *Cluster) CAPool() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caPool
}

// AdminToken returns the bootstrap admin bearer token.
func (c *Cluster) AdminToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.adminTok
}

// JoinToken returns the bootstrap join token.
func (c *Cluster) JoinToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joinToken
}

// Statuses asks each node for /v1/cluster/status. A node that does not
// answer is missing from the map, and its error is in errs.
func (c *Cluster) Statuses(nodes ...*Node) (map[string]*api.ClusterStatus, error) {
	out := map[string]*api.ClusterStatus{}
	var errs []error
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		st, err := n.API().ClusterStatus(ctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
			continue
		}
		out[n.ID] = st
	}
	return out, errors.Join(errs...)
}

// agreedLeader checks that every node answers and names the same leader, one
// of nodes, which itself says it leads. It returns that leader.
func (c *Cluster) agreedLeader(nodes []*Node) (*Node, map[string]*api.ClusterStatus, error) {
	for _, n := range nodes {
		if !n.Running() {
			return nil, nil, stopWaiting(fmt.Errorf("%s is not running: %s", n.ID, n.exitDescription()))
		}
	}
	sts, err := c.Statuses(nodes...)
	if err != nil {
		return nil, nil, err
	}
	leaderID := sts[nodes[0].ID].LeaderID
	for id, st := range sts {
		if st.LeaderID == "" || st.LeaderID != leaderID {
			return nil, nil, fmt.Errorf("no agreed leader: %s", describeLeaders(sts))
		}
		if id == leaderID && st.State != "Leader" {
			return nil, nil, fmt.Errorf("%s is named leader but is %s", id, st.State)
		}
	}
	leader := c.Node(leaderID)
	if leader == nil || !slices.Contains(nodes, leader) {
		return nil, nil, fmt.Errorf("leader %q is not among the nodes waited on", leaderID)
	}
	return leader, sts, nil
}

func describeLeaders(sts map[string]*api.ClusterStatus) string {
	var parts []string
	for id, st := range sts {
		parts = append(parts, fmt.Sprintf("%s(%s) sees %q", id, st.State, st.LeaderID))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// WaitLeader waits until every node of nodes (default: every running node)
// answers its status and names the same leader, one of them.
func (c *Cluster) WaitLeader(timeout time.Duration, nodes ...*Node) (*Node, error) {
	if len(nodes) == 0 {
		nodes = c.Running()
	}
	var leader *Node
	err := waitFor(timeout, func() error {
		var err error
		leader, _, err = c.agreedLeader(nodes)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wait for a leader among %s: %w", nodeIDs(nodes), err)
	}
	return leader, nil
}

// WaitMembers waits until every node of nodes lists exactly nodes as the
// voting members of the cluster, under one leader.
func (c *Cluster) WaitMembers(timeout time.Duration, nodes ...*Node) error {
	want := nodeIDs(nodes)
	err := waitFor(timeout, func() error {
		_, sts, err := c.agreedLeader(nodes)
		if err != nil {
			return err
		}
		for id, st := range sts {
			var voters []string
			for _, m := range st.Members {
				if m.Voter {
					voters = append(voters, m.ID)
				}
			}
			slices.Sort(voters)
			if !slices.Equal(voters, want) || len(st.Members) != len(want) {
				return fmt.Errorf("%s lists members %+v, want voters %v", id, st.Members, want)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for members %v: %w", want, err)
	}
	return nil
}

// WaitConverged waits until nodes (default: every running node) have
// converged (see Converged). It returns the leader's status.
func (c *Cluster) WaitConverged(timeout time.Duration, nodes ...*Node) (*api.ClusterStatus, error) {
	if len(nodes) == 0 {
		nodes = c.Running()
	}
	var out *api.ClusterStatus
	err := waitFor(timeout, func() error {
		var err error
		out, err = c.Converged(nodes...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wait for %s to converge: %w", nodeIDs(nodes), err)
	}
	return out, nil
}

// Converged checks once that nodes agree on a leader, the leader has
// committed its whole log, and every node has applied all of it to the same
// state (same applied index, same state digest). It returns the leader's
// status, or an error saying what differs.
func (c *Cluster) Converged(nodes ...*Node) (*api.ClusterStatus, error) {
	leader, sts, err := c.agreedLeader(nodes)
	if err != nil {
		return nil, err
	}
	ls := sts[leader.ID]
	if ls.CommitIndex != ls.LastIndex {
		return nil, fmt.Errorf("leader %s has committed %d of %d log entries", leader.ID, ls.CommitIndex, ls.LastIndex)
	}
	for id, st := range sts {
		if st.AppliedIndex != ls.LastIndex {
			return nil, fmt.Errorf("%s applied %d, leader %s's log ends at %d", id, st.AppliedIndex, leader.ID, ls.LastIndex)
		}
		if st.StateDigest != ls.StateDigest {
			return nil, fmt.Errorf("%s has state digest %.12s, leader %s %.12s", id, st.StateDigest, leader.ID, ls.StateDigest)
		}
	}
	return ls, nil
}

func nodeIDs(nodes []*Node) []string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	slices.Sort(ids)
	return ids
}

// Node is one rampartd of a cluster. Its process may be started, stopped,
// killed and restarted any number of times over the same data dir; each run
// has its own log files.
type Node struct {
	c       *Cluster
	ID      string
	IP      string
	DataDir string
	// Prefix, when set, is a command the node runs under (the binary and
	// its flags become its last arguments), e.g. unshare to give the node a
	// mount of its own.
	Prefix []string
	// Bin, when set, is the rampartd binary the node's next runs use (an
	// older build, in the rolling upgrade test); empty, the build under test.
	Bin string

	mu   sync.Mutex
	runs []*process // every run, the last one current
	// api is the client API returns, made with the admin token apiTok.
	api    *client.Client
	apiTok string
}

// process is one run of a node.
type process struct {
	cmd        *exec.Cmd
	stdoutPath string
	stderrPath string
	done       chan struct{} // closed when the process has exited
	state      *os.ProcessState
	waitErr    error
}

// SSHAddr, APIAddr and RaftAddr are the node's listen addresses.
func (n *Node) SSHAddr() string  { return net.JoinHostPort(n.IP, portSSH) }
func (n *Node) APIAddr() string  { return net.JoinHostPort(n.IP, portAPI) }
func (n *Node) RaftAddr() string { return net.JoinHostPort(n.IP, portRaft) }

// BaseArgs are the flags every run of the node gets: its id, data dir, the
// shared KEK and its three addresses, and leave to register targets on
// loopback addresses (the tests' targets run on 127.0.0.N).
func (n *Node) BaseArgs() []string {
	args := []string{
		"--node-id", n.ID, "--data-dir", n.DataDir, "--kek-file", n.c.KEKFile,
		"--listen-ssh", n.SSHAddr(), "--listen-api", n.APIAddr(), "--listen-raft", n.RaftAddr(),
		"--oidc-issuer", n.c.OIDCIssuer, "--oidc-client-id", "rampart", "--allow-loopback-targets",
	}
	if n.c.ConfigFile != "" {
		args = append(args, "--config", n.c.ConfigFile)
	}
	return args
}

func (n *Node) current() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.runs) == 0 {
		return nil
	}
	return n.runs[len(n.runs)-1]
}

// Running reports whether the node's current process is running.
func (n *Node) Running() bool {
	p := n.current()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Start runs the node with BaseArgs plus extra ("--bootstrap", "--join", ...)
// and waits until its API answers /v1/health. A restart over an existing data
// dir needs no extra flags.
func (n *Node) Start(extra ...string) error {
	if _, err := n.spawn(append(n.BaseArgs(), extra...)); err != nil {
		return err
	}
	if n.c.CAPool() == nil {
		return nil // bootstrapping: Cluster.Start waits for the CA first
	}
	return n.WaitHealthy(waitLong)
}

// Restart starts the node again over its data dir, with no bootstrap or join
// flag: a node that has its TLS files and raft state needs neither.
func (n *Node) Restart() error { return n.Start() }

// spawn starts a run of the node with exactly args.
func (n *Node) spawn(args []string) (*process, error) {
	if n.Running() {
		return nil, fmt.Errorf("%s is already running", n.ID)
	}
	bin := n.Bin
	if bin == "" {
		var err error
		if bin, err = binary("rampartd"); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	run := len(n.runs) + 1
	n.mu.Unlock()
	base := filepath.Join(n.c.Dir, "logs", fmt.Sprintf("%s.%d", n.ID, run))
	p := &process{stdoutPath: base + ".stdout", stderrPath: base + ".stderr", done: make(chan struct{})}
	stdout, err := os.Create(p.stdoutPath)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(p.stderrPath)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	p.cmd = exec.Command(bin, args...)
	if len(n.Prefix) > 0 {
		p.cmd = exec.Command(n.Prefix[0], slices.Concat(n.Prefix[1:], []string{bin}, args)...)
	}
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.cmd.Env = append(childEnv(), n.c.Env...)
	// The node dies with the test binary, whatever kills it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", n.ID, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.state, p.waitErr = p.cmd.ProcessState, err
		close(p.done)
	}()
	n.mu.Lock()
	n.runs = append(n.runs, p)
	n.mu.Unlock()
	return p, nil
}

// childEnv is the test's environment without RAMPART_* variables, so that the
// node's configuration is exactly its flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAMPART_") {
			env = append(env, kv)
		}
	}
	return env
}

// RunResult is the outcome of a node run to its end.
type RunResult struct {
	ExitCode       int
	Stdout, Stderr string
}

// Run runs rampartd with exactly args (see BaseArgs) until it exits, and
// returns its exit code and output. It is for runs expected to end by
// themselves, such as refused joins; one still running after timeout is
// killed and reported as an error.
func (n *Node) Run(timeout time.Duration, args ...string) (*RunResult, error) {
	p, err := n.spawn(args)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = n.Kill()
		return nil, fmt.Errorf("%s still running after %s", n.ID, timeout)
	}
	stdout, _ := os.ReadFile(p.stdoutPath)
	stderr, _ := os.ReadFile(p.stderrPath)
	return &RunResult{ExitCode: p.state.ExitCode(), Stdout: string(stdout), Stderr: string(stderr)}, nil
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone. A node
// that is not running is left alone.
func (n *Node) Kill() error {
	p := n.current()
	if p == nil || !n.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", n.ID, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(waitStop):
		return fmt.Errorf("%s survived SIGKILL for %s", n.ID, waitStop)
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit,
// returning its exit code. One that outlives timeout is killed, and the error
// says so.
func (n *Node) Stop(timeout time.Duration) (int, error) {
	p := n.current()
	if p == nil || !n.Running() {
		return 0, fmt.Errorf("%s is not running", n.ID)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("stop %s: %w", n.ID, err)
	}
	select {
	case <-p.done:
		return p.state.ExitCode(), nil
	case <-time.After(timeout):
		_ = n.Kill()
		return -1, fmt.Errorf("%s did not exit within %s of SIGTERM; killed", n.ID, timeout)
	}
}

// exitDescription says how the current run ended.
func (n *Node) exitDescription() string {
	p := n.current()
	switch {
	case p == nil:
		return "never started"
	case n.Running():
		return "running"
	case p.state != nil:
		return p.state.String() + "; stderr: " + lastLines(p.stderrPath, 5)
	}
	return fmt.Sprint(p.waitErr)
}

// WaitHealthy waits until the node's API answers GET /v1/health.
func (n *Node) WaitHealthy(timeout time.Duration) error {
	err := waitFor(timeout, func() error {
		if !n.Running() {
			return stopWaiting(fmt.Errorf("exited: %s", n.exitDescription()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		_, err := n.API().Health(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s healthy: %w", n.ID, err)
	}
	return nil
}

// API returns the node's client of the HTTPS API, trusting the cluster CA
// and carrying the admin token (one per node, so that its connections are
// reused).
func (n *Node) API() *client.Client {
	tok, pool := n.c.AdminToken(), n.c.CAPool()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.api == nil || n.apiTok != tok {
		if n.api != nil {
			n.api.CloseIdleConnections()
		}
		n.api, n.apiTok = n.NewAPI(client.WithRootCAs(pool), client.WithToken(tok)), tok
	}
	return n.api
}

// NewAPI returns a new client of the node's HTTPS API configured by opts
// (no trust, no token unless given); the caller closes its idle
// connections. A call is bounded by its context, which the tests give at
// most waitLong, not by the client's default timeout.
func (n *Node) NewAPI(opts ...client.Option) *client.Client {
	c, err := client.New([]string{n.APIAddr()}, append([]client.Option{client.WithTimeout(waitLong)}, opts...)...)
	if err != nil {
		panic(fmt.Sprintf("e2e: client of %s: %v", n.ID, err))
	}
	return c
}

// closeAPI closes the idle connections of the node's API client.
func (n *Node) closeAPI() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.api != nil {
		n.api.CloseIdleConnections()
	}
}

// Certificate loads the node's TLS certificate and key from its data dir.
func (n *Node) Certificate() (tls.Certificate, error) {
	return tls.LoadX509KeyPair(filepath.Join(n.DataDir, "tls", "node.crt"), filepath.Join(n.DataDir, "tls", "node.key"))
}

// logTails prints the end of every run's stdout and stderr.
func (n *Node) logTails() {
	n.mu.Lock()
	runs := slices.Clone(n.runs)
	n.mu.Unlock()
	for i, p := range runs {
		status := "still running"
		select {
		case <-p.done:
			status = p.state.String()
		default:
		}
		n.c.t.Logf("==== %s/%s run %d: %s (%s)\n---- stdout (last %d lines):\n%s\n---- stderr (last %d lines):\n%s",
			n.c.Name, n.ID, i+1, strings.Join(p.cmd.Args, " "), status,
			logTailLines, lastLines(p.stdoutPath, logTailLines), logTailLines, lastLines(p.stderrPath, logTailLines))
	}
}

// lastLines returns the last max lines of a file.
func lastLines(path string, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > max {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
