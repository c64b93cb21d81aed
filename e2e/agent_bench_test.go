package e2e

// Benchmarks of the agents' long-poll against one dev node: simulated agents
// are the real agent code (agent.Enroll against /v1/agents/enroll with a
// multi-use token, each its own key pair, machine id and certificate, then
// agent.Puller's long-poll over its own mutual-TLS connection), run as
// goroutines of the test process; only the applier is stubbed: it notes when
// each state arrives. The numbers and the command that made them are in
// docs/benchmarks.md:
//
//	RAMPART_BIN=/path/to/bin go test -run '^$' -bench AgentPropagation -benchtime 4x -timeout 20m ./e2e/
//	RAMPART_BIN=/path/to/bin go test -run '^$' -bench AgentIdle -benchtime 1x -timeout 40m ./e2e/
//
// The -agent.* flags (after -args) resize the fleets. rampartd's RSS and CPU
// are read from /proc for its process alone, so the simulated agents' own
// work is never counted (it does compete for the same cores).

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/agent"
	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

const (
	// agentBenchProject is the project every simulated agent enrolls into;
	// engineering is granted to it from the start, agentBenchGroup is
	// granted and revoked to make the change that is measured. alice (a dev
	// IdP user in both groups) is the account that changes.
	agentBenchProject = "fleet"
	agentBenchGroup   = "rampart-admins"
	agentBenchUser    = "alice"
)

var (
	agentPropagation = flag.Int("agent.propagation", 1000, "BenchmarkAgentPropagation: simulated agents")
	agentIdle        = flag.Int("agent.idle", 10000, "BenchmarkAgentIdle: simulated agents")
	agentWait        = flag.Duration("agent.wait", 5*time.Minute, "the agents' poll_wait (the agent's default, 5m)")
	agentSample      = flag.Duration("agent.sample", 0, "BenchmarkAgentIdle: how long rampartd is sampled (0: one whole poll cycle, wait + wait/16 + 2s)")
	agentEnrollConc  = flag.Int("agent.enroll-conc", 16, "concurrent enrollments")
	agentStartConc   = flag.Int("agent.start-conc", 64, "agents connecting for their first state at once")
	agentRestart     = flag.Bool("agent.restart", true, "BenchmarkAgentIdle: restart the node between enrolling and connecting the agents (else wait for the enrollments' connections to close)")
	agentProfiles    = flag.String("agent.profile-dir", "", "BenchmarkAgentIdle: write rampartd's CPU profile of the sampling window, heap profile and goroutine dump here")
)

// agentPprofPort is where rampartd serves its runtime profiles (on the
// node's IP) when -agent.profile-dir is given.
const agentPprofPort = "6060"

// BenchmarkAgentPropagation measures how long a group membership change (a
// group granted to the agents' project, then revoked, alternately: each
// changes alice's unix groups on every server) takes from the admin API's
// acknowledgement of the write until each simulated agent has received a
// state that contains it. One iteration is one change seen by every agent.
func BenchmarkAgentPropagation(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a node and many simulated agents")
	}
	f := setupAgentFleet(b, "agentprop", newIP(b, "agentprop node"), *agentPropagation, false)
	f.startPulling(b)
	var fromAck, fromSend []time.Duration
	early := 0
	for b.Loop() {
		f.settle(b)
		r := f.change(b)
		fromAck, fromSend, early = append(fromAck, r.fromAck...), append(fromSend, r.fromSend...), early+r.early
		b.Logf("%s %s: all %d agents had it %.0f ms after the acknowledgement (p50 %.0f ms, p99 %.0f ms; the write took %.0f ms; rampartd used %.0f ms of CPU)",
			r.verb, agentBenchGroup, len(f.agents), ms(slices.Max(r.fromAck)), ms(percentile(r.fromAck, 0.5)), ms(percentile(r.fromAck, 0.99)),
			ms(r.write), ms(r.cpu))
	}
	f.checkAgents(b)
	b.ReportMetric(float64(len(f.agents)), "agents")
	b.ReportMetric(ms(percentile(fromAck, 0.5)), "ms-p50")
	b.ReportMetric(ms(percentile(fromAck, 0.99)), "ms-p99")
	b.ReportMetric(ms(slices.Max(fromAck)), "ms-max")
	b.ReportMetric(ms(percentile(fromSend, 0.99)), "ms-p99-from-send")
	if early > 0 {
		b.Logf("%d of %d arrivals came before the write's acknowledgement (counted as 0 ms)", early, len(fromAck))
	}
}

// BenchmarkAgentIdle holds many simulated agents in their long-poll on one
// node and reads rampartd's RSS and CPU over one whole poll cycle (every
// agent's blocking query times out once in it and is asked again, as in a
// steady state). One iteration is one sampling window; after the last, one
// change is sent to all of them, for the cost of a fan-out at that scale.
func BenchmarkAgentIdle(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a node and many simulated agents")
	}
	f := setupAgentFleet(b, "agentidle", newIP(b, "agentidle node"), *agentIdle, true)
	f.startPulling(b)
	window := *agentSample
	if window <= 0 {
		window = *agentWait + *agentWait/16 + 2*time.Second
	}
	var rss, hwm int64
	var cpuPct, peakPct, repolls float64
	for b.Loop() {
		f.settle(b)
		var profiled sync.WaitGroup
		if *agentProfiles != "" {
			profiled.Go(func() { f.saveProfile(b, "cpu.pb.gz", fmt.Sprintf("profile?seconds=%d", int(window.Seconds()))) })
		}
		polls0 := f.polls()
		start, cpu0 := time.Now(), procCPU(b, f.pid)
		lastAt, lastCPU := start, cpu0
		peakPct = 0
		for time.Since(start) < window {
			time.Sleep(min(5*time.Second, window-time.Since(start)))
			now, cpu := time.Now(), procCPU(b, f.pid)
			pct := 100 * (cpu - lastCPU).Seconds() / now.Sub(lastAt).Seconds()
			peakPct = max(peakPct, pct)
			b.Logf("%5.1fs: rampartd VmRSS %6.1f MiB, CPU %5.1f %% of a core over the last %s",
				now.Sub(start).Seconds(), float64(procStatusKiB(b, f.pid, "VmRSS"))/1024, pct, now.Sub(lastAt).Round(100*time.Millisecond))
			lastAt, lastCPU = now, cpu
		}
		took := time.Since(start)
		cpuPct = 100 * (procCPU(b, f.pid) - cpu0).Seconds() / took.Seconds()
		rss, hwm = procStatusKiB(b, f.pid, "VmRSS"), procStatusKiB(b, f.pid, "VmHWM")
		repolls = float64(f.polls()-polls0) / took.Seconds()
		profiled.Wait()
		if *agentProfiles != "" {
			f.saveProfile(b, "heap.pb.gz", "heap?gc=1")
			f.saveProfile(b, "goroutines.txt", "goroutine?debug=1")
		}
		b.Logf("%d agents over %s: rampartd VmRSS %.1f MiB (%.1f MiB before they connected, peak %.1f), CPU %.2f %% of one core (peak 5 s: %.1f %%), %.0f polls answered per second",
			len(f.agents), took.Round(time.Second), float64(rss)/1024, float64(f.rssBefore)/1024, float64(hwm)/1024, cpuPct, peakPct, repolls)
	}
	f.checkAgents(b)
	b.ReportMetric(float64(len(f.agents)), "agents")
	b.ReportMetric(float64(rss)/1024, "MiB-rampartd-rss")
	b.ReportMetric(float64(rss-f.rssBefore)/float64(len(f.agents)), "KiB/agent-rampartd")
	b.ReportMetric(cpuPct, "cpu-%-of-core")
	b.ReportMetric(peakPct, "cpu-%-peak-5s")
	b.ReportMetric(repolls, "polls/s")

	// One change to every agent at this scale (not part of the loop's time).
	b.StopTimer()
	f.settle(b)
	r := f.change(b)
	b.Logf("%s %s to %d agents: from the acknowledgement (after %.0f ms) p50 %.0f ms, p99 %.0f ms; from sending the write p50 %.0f ms, p99 %.0f ms, all %.0f ms; %d arrivals before the acknowledgement; rampartd used %.2f s of CPU (%.0f µs per agent)",
		r.verb, agentBenchGroup, len(f.agents), ms(r.write), ms(percentile(r.fromAck, 0.5)), ms(percentile(r.fromAck, 0.99)),
		ms(percentile(r.fromSend, 0.5)), ms(percentile(r.fromSend, 0.99)), ms(slices.Max(r.fromSend)), r.early,
		r.cpu.Seconds(), float64(r.cpu.Microseconds())/float64(len(f.agents)))
	f.checkAgents(b)
	b.ReportMetric(ms(percentile(r.fromAck, 0.99)), "ms-p99-change")
	b.ReportMetric(ms(percentile(r.fromSend, 0.99)), "ms-p99-change-from-send")
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(len(f.agents)), "rampartd-cpu-µs/agent-change")

	// A write none of these agents' states depends on: a server registered
	// in another project.
	writeProject(b, f.api, "other", api.Project{Description: "not the fleet's"})
	f.settle(b)
	before := f.indexes()
	cpu0 := procCPU(b, f.pid)
	putServer(b, f.api, "other-1", api.Server{Project: "other", Name: "other-1", Addr: "198.19.0.1", HostKeys: []string{f.hostKey}})
	// Agents that are not woken are not waited for: up to 20 s, then
	// whoever has a new state counts.
	woken := 0
	for deadline := time.Now().Add(20 * time.Second); woken < len(f.agents) && time.Now().Before(deadline); time.Sleep(pollEvery) {
		woken = 0
		for i, idx := range f.indexes() {
			if idx > before[i] {
				woken++
			}
		}
	}
	f.settle(b)
	cpu := procCPU(b, f.pid) - cpu0
	b.Logf("a server registered in another project: %d of the %d agents were sent a state with a new index; rampartd used %.2f s of CPU from the write until quiet",
		woken, len(f.agents), cpu.Seconds())
	b.ReportMetric(float64(woken), "agents-woken-by-unrelated-write")
	b.ReportMetric(cpu.Seconds(), "rampartd-cpu-s-on-unrelated-write")
}

// agentFleet is a dev node and its simulated agents.
type agentFleet struct {
	node   *DevNode
	pid    int
	dir    string
	api    *client.Client
	agents []*simAgent
	// warnings counts the pullers' warnings (each a failed poll it retried).
	warnings *warnCounter
	warned   int64 // warnings already reported
	// granted is whether agentBenchGroup is granted to the project now.
	granted bool
	// rssBefore is rampartd's VmRSS (KiB) after enrollment, before any
	// agent connected.
	rssBefore int64
	// hostKey is the host key every agent enrolled with, authorized_keys
	// format.
	hostKey string
}

// simAgent is one simulated agent: its identity from enrollment and what
// its stubbed applier has seen.
type simAgent struct {
	dataDir string
	id      *agent.Identity

	mu        sync.Mutex
	states    int       // states received
	index     uint64    // the last state's index
	polling   bool      // inside Puller.Next
	has       bool      // whether the last state gave alice agentBenchGroup
	changedAt time.Time // when has last changed
	err       error     // why the pull loop ended early
}

// setupAgentFleet starts a dev node on ip, binds alice's key, creates the
// project with engineering granted and enrolls n agents into it. With
// settle, the agents later connect to a node without the enrollments'
// leftovers: restarted (-agent.restart), or else once the enrollments'
// connections have been closed.
func setupAgentFleet(b *testing.B, name, ip string, n int, settle bool) *agentFleet {
	// Go raises the soft limit to the hard one at start; a hard limit too
	// low for n connections cannot be raised without privileges.
	var lim syscall.Rlimit
	fatalIf(b, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		fatalIf(b, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim), "raise RLIMIT_NOFILE")
	}
	if need := uint64(n) + 1000; lim.Cur < need {
		b.Fatalf("RLIMIT_NOFILE is %d, %d agents need about %d descriptors (fewer with -agent.idle)", lim.Cur, n, need)
	}
	nodeConfig := ""
	if *agentProfiles != "" {
		nodeConfig = fmt.Sprintf("log:\n  pprof_listen: %q\n", net.JoinHostPort(ip, agentPprofPort))
	}
	f := &agentFleet{node: StartDevNodeWith(b, name, ip, nodeConfig), dir: b.TempDir(), warnings: &warnCounter{}}
	f.pid = f.node.current().cmd.Process.Pid
	if soft := nodeFileLimit(b, f.pid); soft < uint64(n)+1000 {
		b.Fatalf("rampartd may open only %d files, too few for %d agents", soft, n)
	}
	f.api = f.node.API()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(b, err)
	signer, err := gossh.NewSignerFromKey(priv)
	fatalIf(b, err)
	hostCA, nodeHostCA := hostCAKeys(b, f.api), nodeHostCAKeys(b, f.api)
	be := &benchEnv{node: f.node, signer: signer, hostCA: parseKeys(b, append(hostCA.Keys, nodeHostCA.Keys...))}
	be.bindKey(b)
	writeProject(b, f.api, agentBenchProject, api.Project{Description: "simulated agents"})
	grant(b, f.api, agentBenchProject, "engineering")
	token := strings.TrimSpace(adminExec(b, be, fmt.Sprintf("tokens create %s --uses %d --quiet", agentBenchProject, n)))
	if _, err := api.ParseToken(token); err != nil {
		b.Fatalf("tokens create printed %q: %v", token, err)
	}
	f.enroll(b, n, token)
	switch {
	case settle && *agentRestart:
		f.restartNode(b)
	case settle:
		f.drainEnrollments(b, n)
	}
	return f
}

// adminExec runs one admin shell command as alice and returns its output.
func adminExec(b *testing.B, be *benchEnv, command string) string {
	c, err := gossh.Dial("tcp", be.node.SSHAddr(), &gossh.ClientConfig{
		User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(be.signer)},
		HostKeyCallback: be.hostCAChecker(), HostKeyAlgorithms: []string{gossh.CertAlgoED25519v01}, Timeout: waitLong,
	})
	fatalIf(b, err, "admin shell")
	defer c.Close()
	s, err := c.NewSession()
	fatalIf(b, err)
	defer s.Close()
	var stderr strings.Builder
	s.Stderr = &stderr
	out, err := s.Output(command)
	fatalIf(b, err, "admin "+command+": "+stderr.String())
	return string(out)
}

// enroll enrolls n agents with agent.Enroll, each from its own directory
// (token file, machine id, data dir), agentEnrollConc at a time.
func (f *agentFleet) enroll(b *testing.B, n int, token string) {
	hostKey := filepath.Join(f.dir, "ssh_host_ed25519_key.pub")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(b, err)
	sshPub, err := gossh.NewPublicKey(pub)
	fatalIf(b, err)
	// One host key for all: what the node does per server (certify it) is
	// the same whichever key it is.
	f.hostKey = authorizedLine(sshPub)
	fatalIf(b, os.WriteFile(hostKey, []byte(f.hostKey+"\n"), 0o644))
	f.agents = make([]*simAgent, n)
	var (
		next   atomic.Int64
		failed = make(chan error, 1)
		wg     sync.WaitGroup
		logger = slog.New(slog.DiscardHandler)
	)
	start, cpu0 := time.Now(), procCPU(b, f.pid)
	for range *agentEnrollConc {
		wg.Go(func() {
			for len(failed) == 0 {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				a, err := enrollOne(f.dir, i, token, hostKey, logger)
				if err != nil {
					select {
					case failed <- fmt.Errorf("agent %d: %w", i, err):
					default:
					}
					return
				}
				f.agents[i] = a
				if done := i + 1; done%1000 == 0 {
					b.Logf("%5d agents enrolled after %s", done, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		b.Fatalf("enroll: %v", <-failed)
	}
	took, cpu := time.Since(start), procCPU(b, f.pid)-cpu0
	b.Logf("%d agents enrolled in %s: %.0f/s, %.1f ms of rampartd CPU each", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), float64(cpu.Microseconds())/1000/float64(n))
	b.ReportMetric(float64(n)/took.Seconds(), "enrolls/s")
}

// drainEnrollments waits for the node to close the enrollments'
// connections: agent.Enroll leaves its connection idle in a transport it
// then drops, and the node closes it after its idle timeout (2 min). Until
// then they count against the descriptor limit and the RSS.
func (f *agentFleet) drainEnrollments(b *testing.B, n int) {
	start := time.Now()
	fatalIf(b, waitFor(3*time.Minute, func() error {
		if fds := procFDs(b, f.pid); fds > 100+n/100 {
			return fmt.Errorf("rampartd still has %d descriptors open", fds)
		}
		return nil
	}), "enrollment connections closing")
	b.Logf("enrollment connections closed after %s more", time.Since(start).Round(time.Second))
}

// restartNode stops the node (SIGTERM) and starts it again over its data
// dir, as `make dev` would.
func (f *agentFleet) restartNode(b *testing.B) {
	rss := procStatusKiB(b, f.pid, "VmRSS")
	code, err := f.node.Stop(waitStop)
	fatalIf(b, err, "stop the node")
	if code != 0 {
		b.Fatalf("the node exited %d on SIGTERM", code)
	}
	fatalIf(b, f.node.Start("--dev", "--config", f.node.ConfigPath), "restart the node")
	f.pid = f.node.current().cmd.Process.Pid
	// Healthy is not enough: until it leads again, the node refuses agents'
	// reads as possibly stale.
	_, err = f.node.c.WaitLeader(waitLong, f.node.Node)
	fatalIf(b, err)
	b.Logf("node restarted: VmRSS %.1f MiB after the enrollments, %.1f MiB now", float64(rss)/1024, float64(procStatusKiB(b, f.pid, "VmRSS"))/1024)
}

// enrollOne enrolls agent i as the real agent does, from a directory of its
// own under dir.
func enrollOne(dir string, i int, token, hostKey string, logger *slog.Logger) (*simAgent, error) {
	home := filepath.Join(dir, fmt.Sprintf("agent-%05d", i))
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	mid := make([]byte, 16)
	_, _ = rand.Read(mid)
	cfg := &agent.Config{
		TokenFile: filepath.Join(home, "enrollment.token"), DataDir: filepath.Join(home, "data"),
		MachineIDFile: filepath.Join(home, "machine-id"), HostKeyFiles: []string{hostKey},
		Name: fmt.Sprintf("sim-%05d", i), Addr: fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250), SSHPort: 22,
	}
	if err := os.WriteFile(cfg.MachineIDFile, []byte(hex.EncodeToString(mid)+"\n"), 0o444); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	id, err := agent.Enroll(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	return &simAgent{dataDir: cfg.DataDir, id: id}, nil
}

// startPulling starts every agent's pull loop, agentStartConc at a time
// until each has its first state, and stops them in b.Cleanup.
func (f *agentFleet) startPulling(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	f.rssBefore = procStatusKiB(b, f.pid, "VmRSS")
	logger := slog.New(f.warnings)
	sem := make(chan struct{}, *agentStartConc)
	start := time.Now()
	for _, a := range f.agents {
		p, err := agent.NewPuller(a.dataDir, a.id, *agentWait, logger)
		fatalIf(b, err)
		sem <- struct{}{}
		wg.Go(func() { a.pull(ctx, p, func() { <-sem }) })
	}
	fatalIf(b, waitFor(waitLong, func() error {
		n, err := f.connected()
		if err != nil {
			return stopWaiting(err)
		}
		if n < len(f.agents) {
			return fmt.Errorf("%d of %d agents have their first state", n, len(f.agents))
		}
		return nil
	}), "agents' first state")
	b.Logf("%d agents have their first state after %s; rampartd VmRSS %.1f MiB", len(f.agents), time.Since(start).Round(time.Millisecond),
		float64(procStatusKiB(b, f.pid, "VmRSS"))/1024)
}

// pull is the agent's loop with a stubbed applier: it records when the
// state's answer to "has alice agentBenchGroup?" changes. first is called
// once, when the first state has arrived.
func (a *simAgent) pull(ctx context.Context, p *agent.Puller, first func()) {
	var index uint64
	for {
		a.mu.Lock()
		a.polling = true
		a.mu.Unlock()
		st, err := p.Next(ctx, index)
		now := time.Now()
		a.mu.Lock()
		a.polling = false
		if err != nil {
			if ctx.Err() == nil {
				a.err = err
			}
			a.mu.Unlock()
			if index == 0 {
				first()
			}
			return
		}
		if has := userHasGroup(st, agentBenchUser, agentBenchGroup); a.states == 0 || has != a.has {
			a.has, a.changedAt = has, now
		}
		a.states++
		a.index = st.Index
		a.mu.Unlock()
		if index == 0 {
			first()
		}
		index = st.Index
	}
}

// userHasGroup is the stubbed applier's whole view of a state.
func userHasGroup(st *api.AgentState, user, group string) bool {
	for _, u := range st.Users {
		if u.Name == user {
			return slices.Contains(u.Groups, group)
		}
	}
	return false
}

// connected counts the agents that have had their first state; it returns
// an error instead when an agent's loop has ended.
func (f *agentFleet) connected() (int, error) {
	n := 0
	for i, a := range f.agents {
		a.mu.Lock()
		states, err := a.states, a.err
		a.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("agent %d: %w", i, err)
		}
		if states > 0 {
			n++
		}
	}
	return n, nil
}

// polls is the number of states all agents have received.
func (f *agentFleet) polls() int {
	n := 0
	for _, a := range f.agents {
		a.mu.Lock()
		n += a.states
		a.mu.Unlock()
	}
	return n
}

// indexes are the index of each agent's last state.
func (f *agentFleet) indexes() []uint64 {
	out := make([]uint64, len(f.agents))
	for i, a := range f.agents {
		a.mu.Lock()
		out[i] = a.index
		a.mu.Unlock()
	}
	return out
}

// checkAgents fails the benchmark if an agent's loop ended, and logs the
// pullers' retried failures.
func (f *agentFleet) checkAgents(b *testing.B) {
	for i, a := range f.agents {
		a.mu.Lock()
		err := a.err
		a.mu.Unlock()
		if err != nil {
			b.Fatalf("agent %d stopped pulling: %v", i, err)
		}
	}
	if n := f.warnings.n.Load(); n > f.warned {
		b.Logf("the pullers retried %d failed polls so far; the first: %s", n, *f.warnings.first.Load())
		f.warned = n
	}
}

// settle waits until every agent is inside its long-poll again, then for
// rampartd to go quiet (under 5 % of a core over a second) for at most 5 s:
// the requests the clients have sent have reached their blocking query. A
// large fleet whose polls time out all the time is never quite quiet.
func (f *agentFleet) settle(b *testing.B) {
	fatalIf(b, waitFor(waitLong, func() error {
		waiting := 0
		for i, a := range f.agents {
			a.mu.Lock()
			ok, err := a.states > 0 && a.polling, a.err
			a.mu.Unlock()
			if err != nil {
				return stopWaiting(fmt.Errorf("agent %d: %w", i, err))
			}
			if ok {
				waiting++
			}
		}
		if waiting < len(f.agents) {
			return fmt.Errorf("%d of %d agents are polling", waiting, len(f.agents))
		}
		return nil
	}), "agents back in their long-poll")
	for range 5 {
		cpu0 := procCPU(b, f.pid)
		time.Sleep(time.Second)
		if procCPU(b, f.pid)-cpu0 < 50*time.Millisecond {
			return
		}
	}
}

// changeResult is one measured change.
type changeResult struct {
	verb     string
	fromAck  []time.Duration // per agent, from the write's acknowledgement
	fromSend []time.Duration // per agent, from sending the write
	early    int             // arrivals before the acknowledgement
	write    time.Duration   // the write's own round trip
	cpu      time.Duration   // rampartd's CPU from sending the write to the last arrival
}

// change grants agentBenchGroup to the project, or revokes it if granted,
// through the admin API, and waits until every agent has seen it.
func (f *agentFleet) change(b *testing.B) changeResult {
	want := !f.granted
	r := changeResult{verb: "grant"}
	change := grant
	if !want {
		r.verb, change = "revoke", revoke
	}
	cpu0 := procCPU(b, f.pid)
	sent := time.Now()
	change(b, f.api, agentBenchProject, agentBenchGroup)
	ack := time.Now()
	f.granted = want
	r.write = ack.Sub(sent)
	fatalIf(b, waitFor(waitLong, func() error {
		behind := 0
		for i, a := range f.agents {
			a.mu.Lock()
			has, err := a.has, a.err
			a.mu.Unlock()
			if err != nil {
				return stopWaiting(fmt.Errorf("agent %d: %w", i, err))
			}
			if has != want {
				behind++
			}
		}
		if behind > 0 {
			return fmt.Errorf("%d of %d agents have not seen the %s", behind, len(f.agents), r.verb)
		}
		return nil
	}), r.verb+" reaching every agent")
	r.cpu = procCPU(b, f.pid) - cpu0
	for _, a := range f.agents {
		a.mu.Lock()
		at := a.changedAt
		a.mu.Unlock()
		d := at.Sub(ack)
		if d < 0 {
			r.early++
			d = 0
		}
		r.fromAck = append(r.fromAck, d)
		r.fromSend = append(r.fromSend, at.Sub(sent))
	}
	return r
}

// saveProfile writes one of rampartd's runtime profiles to
// -agent.profile-dir.
func (f *agentFleet) saveProfile(b *testing.B, name, path string) {
	hc := &http.Client{Timeout: 15 * time.Minute}
	resp, err := hc.Get("http://" + net.JoinHostPort(f.node.IP, agentPprofPort) + "/debug/pprof/" + path)
	if err != nil {
		b.Errorf("fetch profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Errorf("fetch profile %s: %v", path, err)
		return
	}
	out := filepath.Join(*agentProfiles, b.Name()+"-"+name)
	if err := os.WriteFile(out, body, 0o644); err != nil {
		b.Errorf("%v", err)
		return
	}
	b.Logf("wrote %s", out)
}

// nodeFileLimit is the soft RLIMIT_NOFILE of process pid.
func nodeFileLimit(b *testing.B, pid int) uint64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	fatalIf(b, err)
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseUint(f[0], 10, 64)
				fatalIf(b, err, "Max open files in /proc/"+strconv.Itoa(pid)+"/limits")
				return n
			}
		}
	}
	b.Fatalf("no Max open files in /proc/%d/limits", pid)
	return 0
}

// procFDs counts the open descriptors of process pid.
func procFDs(b *testing.B, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	fatalIf(b, err)
	return len(ents)
}

// warnCounter is a slog handler that counts the warnings of the pullers
// (each one a failed poll retried with backoff) and keeps the first.
type warnCounter struct {
	n     atomic.Int64
	first atomic.Pointer[string]
}

func (w *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	w.n.Add(1)
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	w.first.CompareAndSwap(nil, &msg)
	return nil
}

func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }
