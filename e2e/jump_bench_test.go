package e2e

// Benchmarks of the jump proxy, side by side with OpenSSH's sshd used as the
// jump host on the same machine: one dev node (alice's key bound to her, so
// no browser), one sshd target trusting the project's CA and alice's plain
// key, and one sshd jump host, each target in its own mount namespace. The
// numbers and the command that made them are in docs/benchmarks.md:
//
//	make build && RAMPART_BIN=$PWD/bin go test -run '^$' -bench Jump -benchtime 1x -timeout 30m ./e2e/
//
// Every sub-benchmark iteration is one fixed round (so many ssh runs, one
// transfer of each kind, ...); the figures are custom metrics over all
// rounds, and ns/op is only the length of a round. The -jump.* flags (after
// -args) size the rounds; with the defaults the whole run takes three to
// five minutes.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

const (
	benchTarget = "bench-1"
	benchStub   = "stub-1"
)

var (
	benchRuns     = flag.Int("jump.runs", 20, "BenchmarkJump/latency: ssh runs of each path per round")
	benchStream   = flag.Int64("jump.stream-mib", 1024, "BenchmarkJump/stream: MiB per transfer")
	benchRateFor  = flag.Duration("jump.rate-for", 8*time.Second, "BenchmarkJump/sessions-per-second: how long each path is driven")
	benchRateConc = flag.Int("jump.rate-conc", 8, "BenchmarkJump/sessions-per-second and idle-*: concurrent clients")
	benchPinConc  = flag.Int("jump.rate-conc-1core", 32, "BenchmarkJump/sessions-per-second with rampartd on a core of its own: concurrent clients")
	benchIdleSSHD = flag.Int("jump.idle-sshd", 1000, "BenchmarkJump/idle-sshd: idle proxied sessions held to the sshd target")
	benchIdleStub = flag.Int("jump.idle-stub", 4000, "BenchmarkJump/idle-stub: idle proxied sessions held to the stub target")
	benchProfiles = flag.String("jump.profile-dir", "", "BenchmarkJump/idle-*: write rampartd's heap and goroutine profiles here while the sessions are held; stream: a CPU profile of each transfer through the node")
	benchKinds    = flag.String("jump.stream-kinds", "", "BenchmarkJump/stream: only the transfers whose names match this regular expression")
)

// benchEnv is what every sub-benchmark shares.
type benchEnv struct {
	node     *DevNode
	dir      string
	key      string // alice's private key file
	signer   gossh.Signer
	hostCA   []gossh.PublicKey
	userCA   api.CAKeys
	config   string // ssh_config: both jumps, known hosts pinned
	gcm      string // the same, with Ciphers aes128-gcm@openssh.com
	target   *Target
	jumpHost *Target
	stub     *stubTarget
	// legs are the in-process clients' outer and inner configurations,
	// through the node ("rampart") and through the OpenSSH jump host.
	legs map[string][2]*gossh.ClientConfig
}

// BenchmarkJump sets the environment up once and runs the sub-benchmarks
// against it.
func BenchmarkJump(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a node and sshd targets")
	}
	e := setupBench(b)
	b.Run("latency", e.benchLatency)
	b.Run("stream", e.benchStream)
	b.Run("sessions-per-second", e.benchRate)
	b.Run("idle-sshd", func(b *testing.B) {
		// The node closes its connection to the target when the person's
		// goes: then the target is back to its listener and the holder.
		idle := len(e.target.namespacePids())
		e.benchIdle(b, benchTarget, *benchIdleSSHD, e.target, func() error {
			if n := len(e.target.namespacePids()); n > idle {
				return fmt.Errorf("%d processes in the target, %d when idle", n, idle)
			}
			return nil
		})
	})
	b.Run("idle-stub", func(b *testing.B) {
		e.benchIdle(b, benchStub, *benchIdleStub, nil, func() error {
			if n := e.stub.connections(b); n > 0 {
				return fmt.Errorf("%d connections still open to the stub", n)
			}
			return nil
		})
	})
}

func setupBench(b *testing.B) *benchEnv {
	nodeIP := newIP(b, "jumpbench node")
	// The recorded stream rows carry whole transfers into one recording.
	nodeConfig := fmt.Sprintf("recording:\n  max_session_bytes: %d\n", 4*(*benchStream<<20))
	if *benchProfiles != "" {
		nodeConfig += fmt.Sprintf("log:\n  pprof_listen: %q\n", net.JoinHostPort(nodeIP, benchPprofPort))
	}
	e := &benchEnv{node: StartDevNodeWith(b, "jumpbench", nodeIP, nodeConfig), dir: b.TempDir()}
	e.key = newSSHKey(b, e.dir, "alice")
	pem, err := os.ReadFile(e.key)
	fatalIf(b, err)
	e.signer, err = gossh.ParsePrivateKey(pem)
	fatalIf(b, err)
	c := e.node.API()
	// The bastion's certificate is the node host CA's, the jump's
	// per-target one the target host CA's.
	hostCA, nodeHostCA := hostCAKeys(b, c), nodeHostCAKeys(b, c)
	e.hostCA = parseKeys(b, append(hostCA.Keys, nodeHostCA.Keys...))
	e.bindKey(b)

	// A new project records (the default); benchStream turns that off for
	// the rows that measure the proxy.
	writeProject(b, c, "bench", api.Project{Description: "benchmarks"})
	grant(b, c, "bench", "engineering")
	e.userCA = userCAKeys(b, c, "bench")

	// UsePAM no (as the idle sessions need: fewer processes, no PAM
	// session per login) and room for many concurrent handshakes.
	extra := "MaxStartups 2000\n"
	e.target = NewTarget(b, TargetConfig{Name: benchTarget, IP: newIP(b, benchTarget), HostKeyTypes: []string{"ed25519"}, ExtraConfig: extra})
	fatalIf(b, e.target.TrustCA(parseKeys(b, e.userCA.Keys)...))
	fatalIf(b, e.target.AddUser("alice"))
	// Through the OpenSSH jump host alice logs in to the target with her
	// plain key; through Rampart with the per-hop certificate.
	e.authorizeKey(b, e.target, "alice")
	fatalIf(b, e.target.Start())
	putServer(b, c, benchTarget, api.Server{Project: "bench", Name: benchTarget, Addr: e.target.IP(),
		HostKeys: []string{authorizedLine(e.target.HostKey())}})

	e.jumpHost = NewTarget(b, TargetConfig{Name: "jumphost", IP: newIP(b, "jumphost"), HostKeyTypes: []string{"ed25519"}, ExtraConfig: extra})
	fatalIf(b, e.jumpHost.AddUser("jump"))
	e.authorizeKey(b, e.jumpHost, "jump")
	fatalIf(b, e.jumpHost.Start())

	kh := filepath.Join(e.dir, "known_hosts")
	fatalIf(b, os.WriteFile(kh, []byte(hostCALines(b, c)+
		e.jumpHost.IP()+" "+authorizedLine(e.jumpHost.HostKey())+"\n"+
		e.target.IP()+" "+authorizedLine(e.target.HostKey())+"\n"), 0o600))
	// ssh_config keeps the first value it reads: the node's block first.
	// ProxyJump's ssh reads the file too (-F is passed on), unlike -o.
	base := fmt.Sprintf("Host %s\n  Port %s\nHost *\n  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n"+
		"  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n",
		nodeIP, portSSH, e.key, kh)
	e.config = filepath.Join(e.dir, "ssh_config")
	fatalIf(b, os.WriteFile(e.config, []byte(base), 0o600))
	e.gcm = filepath.Join(e.dir, "ssh_config.gcm")
	fatalIf(b, os.WriteFile(e.gcm, []byte(base+"  Ciphers aes128-gcm@openssh.com\n"), 0o600))

	e.stub = startStubTarget(b, e, newIP(b, benchStub))
	key, certs := []gossh.AuthMethod{gossh.PublicKeys(e.signer)}, []string{gossh.CertAlgoED25519v01}
	e.legs = map[string][2]*gossh.ClientConfig{
		"rampart": {
			{User: "alice", Auth: key, HostKeyCallback: e.hostCAChecker(), HostKeyAlgorithms: certs, Timeout: waitLong},
			// No authentication on the inner leg: the node accepts "none"
			// for the outer connection's identity.
			{User: "alice", HostKeyCallback: e.hostCAChecker(), HostKeyAlgorithms: certs, Timeout: waitLong},
		},
		"openssh": {
			{User: "jump", Auth: key, HostKeyCallback: gossh.FixedHostKey(e.jumpHost.HostKey()), Timeout: waitLong},
			{User: "alice", Auth: key, HostKeyCallback: gossh.FixedHostKey(e.target.HostKey()), Timeout: waitLong},
		},
	}

	// Both paths work before anything is measured.
	for _, via := range []string{"rampart", "openssh"} {
		if r := e.ssh(b, e.config, via, nil, "true"); r.err != nil {
			b.Fatalf("ssh -J through %s: %v", via, r.err)
		}
	}
	return e
}

// bindKey binds alice's key through the device flow once, in-process.
func (e *benchEnv) bindKey(b *testing.B) {
	fatalIf(b, bindKeyInProcess(e.node.Node, "alice", e.signer, e.hostCA), "bind alice's key")
}

func (e *benchEnv) hostCAChecker() gossh.HostKeyCallback { return hostCAChecker(e.hostCA) }

// authorizeKey puts alice's public key in user's authorized_keys on tg.
func (e *benchEnv) authorizeKey(b *testing.B, tg *Target, user string) {
	pub, err := os.ReadFile(e.key + ".pub")
	fatalIf(b, err)
	home := "/home/" + user
	_, err = tg.Exec(context.Background(), "install", "-d", "-m", "700", "-o", user, "-g", user, home+"/.ssh")
	fatalIf(b, err)
	fatalIf(b, os.WriteFile(tg.Path(home+"/.ssh/authorized_keys"), pub, 0o600))
	_, err = tg.Exec(context.Background(), "chown", user+":"+user, home+"/.ssh/authorized_keys")
	fatalIf(b, err)
}

func parseKeys(b *testing.B, lines []string) []gossh.PublicKey {
	var keys []gossh.PublicKey
	for _, l := range lines {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(l))
		fatalIf(b, err, "CA key")
		keys = append(keys, k)
	}
	return keys
}

func authorizedLine(k gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
}

// benchRun is one timed ssh or scp run.
type benchRun struct {
	took time.Duration
	out  int64
	err  error
}

// jumpArgs are the -J option and destination of a path: "rampart" (the
// node), "openssh" (sshd as the jump host) or "direct" (no jump host).
func (e *benchEnv) jumpArgs(config, via string) (args []string, dest string) {
	args = []string{"-F", config}
	switch via {
	case "rampart":
		return append(args, "-J", "alice@"+e.node.IP), "alice@" + benchTarget
	case "openssh":
		return append(args, "-J", "jump@"+e.jumpHost.IP()), "alice@" + e.target.IP()
	}
	return args, "alice@" + e.target.IP()
}

// ssh runs ssh through via, stdin from in (nil: /dev/null), stdout counted
// and dropped.
func (e *benchEnv) ssh(b *testing.B, config, via string, in *os.File, command string) benchRun {
	args, dest := e.jumpArgs(config, via)
	return runTimed(b, "ssh", append(args, dest, command), in)
}

func runTimed(b *testing.B, name string, args []string, in *os.File) benchRun {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = clientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if in != nil {
		cmd.Stdin = in
	}
	var out countingWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	r := benchRun{took: time.Since(start), out: out.n.Load()}
	if err != nil {
		r.err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return r
}

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// benchLatency: median wall time of `ssh -J ... target true`, the two
// paths (and, for scale, plain ssh to the target) interleaved so that all
// see the same background load.
func (e *benchEnv) benchLatency(b *testing.B) {
	times := map[string][]time.Duration{}
	for b.Loop() {
		for range *benchRuns {
			for _, via := range []string{"rampart", "openssh", "direct"} {
				r := e.ssh(b, e.config, via, nil, "true")
				fatalIf(b, r.err)
				times[via] = append(times[via], r.took)
			}
		}
	}
	for _, via := range []string{"rampart", "openssh", "direct"} {
		m, p90 := median(times[via]), percentile(times[via], 0.9)
		b.ReportMetric(ms(m), "ms-median-"+via)
		b.ReportMetric(ms(p90), "ms-p90-"+via)
		b.Logf("%-7s median %s, p90 %s over %d runs", via, m.Round(time.Millisecond), p90.Round(time.Millisecond), len(times[via]))
	}
	b.ReportMetric(float64(median(times["rampart"]))/float64(median(times["openssh"])), "x-rampart/openssh")
}

// benchStream: bytes through the bastion. Download: the target writes N
// bytes of zeros to the session; upload: ssh's stdin (a sparse file, read
// from the page cache) into cat > /dev/null on the target; scp of that file
// to /dev/null there. Compression is off (ssh's default), so zeros are as
// good as any bytes. Also a download with aes128-gcm on every leg, to show
// the cipher's share, and, for scale, downloads without a jump host.
func (e *benchEnv) benchStream(b *testing.B) {
	size := *benchStream << 20
	file := emptyFile(b, e.dir, "stream.bin")
	fatalIf(b, os.Truncate(file, size))
	// Read it once first: the first reader of a fresh sparse file pays
	// for filling the page cache (about 2 CPU-s per GiB in ssh's reads
	// here), which made whichever path uploaded first look slower.
	warm, err := os.Open(file)
	fatalIf(b, err)
	_, err = io.Copy(io.Discard, warm)
	warm.Close()
	fatalIf(b, err)
	pid := e.node.current().cmd.Process.Pid
	download := fmt.Sprintf("head -c %d /dev/zero", size)
	upload := func(cfg, via string) benchRun {
		f, err := os.Open(file)
		fatalIf(b, err)
		defer f.Close()
		return e.ssh(b, cfg, via, f, "cat > /dev/null")
	}
	kinds := []struct {
		name, config string
		run          func(config, via string) benchRun
	}{
		{"download", e.config, func(cfg, via string) benchRun { return e.ssh(b, cfg, via, nil, download) }},
		{"upload", e.config, upload},
		{"scp", e.config, func(cfg, via string) benchRun {
			args, dest := e.jumpArgs(cfg, via)
			return runTimed(b, "scp", append(args, file, dest+":/dev/null"), nil)
		}},
		{"download-gcm", e.gcm, func(cfg, via string) benchRun { return e.ssh(b, cfg, via, nil, download) }},
		{"upload-gcm", e.gcm, func(cfg, via string) benchRun { return upload(cfg, via) }},
	}
	// The same download and upload with the project recording, as a new
	// project does by default: the node also writes what the target sends
	// to disk. The download is text here (64-byte lines): zeros are
	// control characters, six bytes each in the recording's JSON.
	text := fmt.Sprintf("yes %s | head -c %d", strings.Repeat("r", 63), size)
	recorded := func(run func(cfg, via string) benchRun) func(cfg, via string) benchRun {
		return func(cfg, via string) benchRun {
			if via != "rampart" {
				return run(cfg, via)
			}
			e.setRecording(b, true)
			defer e.setRecording(b, false)
			saved := e.recordedSessions(b)
			start := time.Now()
			r := run(cfg, via)
			// The clock runs until the node has saved the recording
			// (closed, synced, its digest in the session's record): the
			// person's ssh ends before that, and the next transfer must
			// not share the machine with the write-back.
			fatalIf(b, waitFor(waitLong, func() error {
				if n := e.recordedSessions(b); n <= saved {
					return fmt.Errorf("%d recorded sessions, the new one not saved yet", n)
				}
				return nil
			}), "recording saved")
			r.took = time.Since(start)
			return r
		}
	}
	kinds = append(kinds,
		struct {
			name, config string
			run          func(config, via string) benchRun
		}{"download-text", e.config, func(cfg, via string) benchRun { return e.ssh(b, cfg, via, nil, text) }},
		struct {
			name, config string
			run          func(config, via string) benchRun
		}{"download-text-recorded", e.config, recorded(func(cfg, via string) benchRun { return e.ssh(b, cfg, via, nil, text) })},
		struct {
			name, config string
			run          func(config, via string) benchRun
		}{"upload-recorded", e.config, recorded(kinds[1].run)})
	took := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	// The proxy's own cost is measured with recording off (OpenSSH's jump
	// host records nothing); the recorded rows turn it on for themselves.
	e.setRecording(b, false)
	defer e.setRecording(b, true)
	only := regexp.MustCompile(*benchKinds)
	round := 0
	for b.Loop() {
		round++
		for i, k := range kinds {
			if !only.MatchString(k.name) {
				continue
			}
			// Which path goes first alternates from kind to kind and
			// round to round, so neither always meets a cold cache or a
			// machine still busy with the transfer before (over an even
			// number of rounds each goes first equally often).
			order := []string{"rampart", "openssh", "direct"}
			if (round+i)%2 == 0 {
				order[0], order[1] = order[1], order[0]
			}
			for _, via := range order {
				if via == "direct" && !strings.HasPrefix(k.name, "download") {
					continue
				}
				if *benchProfiles != "" && via == "rampart" {
					// The first seconds of the transfer (1 GiB takes 4–8 s).
					go saveCPUProfile(b, e.node.IP, "stream-"+k.name, 3*time.Second)
				}
				cpu0 := procCPU(b, pid)
				r := k.run(k.config, via)
				fatalIf(b, r.err)
				if strings.HasPrefix(k.name, "download") && r.out != size {
					b.Fatalf("%s through %s: %d bytes, want %d", k.name, via, r.out, size)
				}
				took[k.name+"/"+via] += r.took
				cpu[k.name+"/"+via] += procCPU(b, pid) - cpu0
			}
		}
	}
	rounds := float64(b.N)
	for _, k := range kinds {
		if !only.MatchString(k.name) {
			continue
		}
		rampart := mbps(size, took[k.name+"/rampart"], rounds)
		openssh := mbps(size, took[k.name+"/openssh"], rounds)
		direct := mbps(size, took[k.name+"/direct"], rounds)
		b.ReportMetric(rampart, "MB/s-"+k.name+"-rampart")
		b.ReportMetric(openssh, "MB/s-"+k.name+"-openssh")
		b.ReportMetric(rampart/openssh, "x-"+k.name)
		// rampartd's CPU per GiB carried: what the proxy costs.
		perGiB := cpu[k.name+"/rampart"].Seconds() / rounds / (float64(size) / (1 << 30))
		b.ReportMetric(perGiB, "cpu-s/GiB-"+k.name+"-rampartd")
		msg := fmt.Sprintf("%-12s of %d MiB: rampart %3.0f MB/s (rampartd %.1f CPU-s per GiB), openssh %3.0f MB/s, ratio %.2f",
			k.name, size>>20, rampart, perGiB, openssh, rampart/openssh)
		if took[k.name+"/direct"] > 0 {
			b.ReportMetric(direct, "MB/s-"+k.name+"-direct")
			msg += fmt.Sprintf("; without a jump host %3.0f MB/s", direct)
		}
		b.Log(msg)
	}
}

// recordedSessions counts the ended sessions whose recording is saved.
func (e *benchEnv) recordedSessions(b *testing.B) int {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	page, err := e.node.API().Sessions(ctx, client.ListOptions{Limit: 1000, Filter: url.Values{"status": {"closed"}}})
	fatalIf(b, err, "list sessions")
	n := 0
	for _, s := range page.Items {
		if s.Recording != "" {
			n++
		}
	}
	return n
}

// setRecording switches the bench project's recording on or off.
func (e *benchEnv) setRecording(b *testing.B, on bool) {
	c := e.node.API()
	p := getProject(b, c, "bench")
	p.Settings.Recording = &on
	writeProject(b, c, "bench", p)
}

// proxied is one in-process client's proxied session: outer connection to
// the jump host, direct-tcpip, inner connection to the target.
type proxied struct {
	outer, inner *gossh.Client
	sess         *gossh.Session
}

func (p *proxied) Close() {
	if p.sess != nil {
		p.sess.Close()
	}
	if p.inner != nil {
		p.inner.Close()
	}
	p.outer.Close()
}

// dialProxied opens the outer connection, the direct-tcpip channel and the
// inner connection to server through the node (via "rampart...") or the
// OpenSSH jump host ("openssh"), with x/crypto's default algorithms, from
// the loopback address src (each benchmark client is a host of its own: the
// node admits at most ssh.max_preauth_per_ip handshakes per address).
func (e *benchEnv) dialProxied(via, server, src string) (*proxied, error) {
	legs, outerAddr, innerAddr := e.legs["rampart"], e.node.SSHAddr(), net.JoinHostPort(server, "22")
	if via == "openssh" {
		legs, outerAddr, innerAddr = e.legs["openssh"], e.jumpHost.Addr(), e.target.Addr()
	}
	d := net.Dialer{Timeout: waitLong, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tcp, err := d.Dial("tcp", outerAddr)
	if err != nil {
		return nil, fmt.Errorf("outer: %w", err)
	}
	oc, ochans, oreqs, err := gossh.NewClientConn(tcp, outerAddr, legs[0])
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("outer: %w", err)
	}
	p := &proxied{outer: gossh.NewClient(oc, ochans, oreqs)}
	ch, err := p.outer.Dial("tcp", innerAddr)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("direct-tcpip %s: %w", innerAddr, err)
	}
	sc, chans, reqs, err := gossh.NewClientConn(ch, innerAddr, legs[1])
	if err != nil {
		ch.Close()
		p.Close()
		return nil, fmt.Errorf("inner: %w", err)
	}
	p.inner = gossh.NewClient(sc, chans, reqs)
	return p, nil
}

// benchRate: new proxied sessions per second, each a new outer connection,
// direct-tcpip, inner handshake (and the node's own to the target) and an
// exec of true, several clients at once, each path driven for
// -jump.rate-for: through the node and through the OpenSSH jump host to the
// sshd target, and through the node to the stub target (where sshd's cost
// is out of the way). The clients, the node and the targets share the
// machine's two cores; the CPU each used says what bounds the rate.
func (e *benchEnv) benchRate(b *testing.B) {
	pid := e.node.current().cmd.Process.Pid
	type result struct {
		n, failed         int64
		clients           int
		elapsed           time.Duration
		node, self, total time.Duration
		firstErr          error
	}
	// rampart-stub-1core: rampartd on a core of its own, the clients and the
	// stub on the others, so its rate is what one core of a node carries
	// with the load generated elsewhere.
	paths := []struct {
		via, server string
		pinned      bool
	}{{"rampart", benchTarget, false}, {"openssh", e.target.IP(), false}, {"rampart-stub", benchStub, false}, {"rampart-stub-1core", benchStub, true}}
	results := map[string]*result{}
	for _, path := range paths {
		results[path.via] = &result{}
	}
	cpus := allCPUs()
	pin := func(node, rest []int) {
		for pid, set := range map[int][]int{pid: node, os.Getpid(): rest, e.stub.pid(): rest} {
			fatalIf(b, pinProcess(pid, set), "set CPU affinity")
		}
	}
	for b.Loop() {
		for _, path := range paths {
			if path.pinned {
				if len(cpus) < 2 {
					continue
				}
				pin(cpus[len(cpus)-1:], cpus[:len(cpus)-1])
			}
			r := results[path.via]
			node0, self0, total0 := procCPU(b, pid), procCPU(b, os.Getpid())+procCPU(b, e.stub.pid()), systemCPU(b)
			start := time.Now()
			deadline := start.Add(*benchRateFor)
			var n, failed atomic.Int64
			firstErr := make(chan error, 1)
			var wg sync.WaitGroup
			if *benchProfiles != "" && path.via != "openssh" {
				wg.Go(func() { saveCPUProfile(b, e.node.IP, "rate-"+path.via, *benchRateFor-time.Second) })
			}
			clients := *benchRateConc
			if path.pinned {
				clients = *benchPinConc
			}
			r.clients = clients
			for i := range clients {
				wg.Go(func() {
					for time.Now().Before(deadline) {
						if err := e.oneSession(path.via, path.server, benchClientIP(i)); err != nil {
							failed.Add(1)
							select {
							case firstErr <- err:
							default:
							}
							continue
						}
						n.Add(1)
					}
				})
			}
			wg.Wait()
			if len(firstErr) > 0 && r.firstErr == nil {
				r.firstErr = <-firstErr
			}
			r.elapsed += time.Since(start)
			r.n += n.Load()
			r.failed += failed.Load()
			r.node += procCPU(b, pid) - node0
			r.self += procCPU(b, os.Getpid()) + procCPU(b, e.stub.pid()) - self0
			r.total += systemCPU(b) - total0
			if path.pinned {
				pin(cpus, cpus)
			}
		}
	}
	for _, path := range paths {
		r := results[path.via]
		if r.elapsed == 0 {
			continue
		}
		rate := float64(r.n) / r.elapsed.Seconds()
		share := func(d time.Duration) float64 { return 100 * d.Seconds() / (float64(len(cpus)) * r.elapsed.Seconds()) }
		b.ReportMetric(rate, "sessions/s-"+path.via)
		b.Logf("%-18s %5d sessions in %s = %3.0f/s with %d clients; CPU of the %d cores: rampartd %2.0f%% (%.1f ms per session), clients (this process, and the stub) %2.0f%%, everything else (sshd, other work) %2.0f%%",
			path.via, r.n, r.elapsed.Round(time.Millisecond), rate, r.clients, len(cpus), share(r.node), float64(r.node.Microseconds())/1000/float64(max(r.n, 1)),
			share(r.self), share(r.total-r.node-r.self))
		if path.pinned {
			busy := 100 * r.node.Seconds() / r.elapsed.Seconds()
			b.ReportMetric(busy, "rampartd-core-busy-%-"+path.via)
			b.Logf("%-18s rampartd alone on CPU %d: its core %.0f%% busy; the clients and the stub on the other %d", path.via, cpus[len(cpus)-1], busy, len(cpus)-1)
		}
		if path.via != "openssh" {
			b.ReportMetric(float64(r.node.Microseconds())/1000/float64(max(r.n, 1)), "rampartd-cpu-ms/session-"+path.via)
		}
		if r.failed > 0 {
			// Reported, not fatal unless many: a rare failure is a finding
			// to chase, and the rate is still measured.
			b.ReportMetric(float64(r.failed), "failed-"+path.via)
			msg := fmt.Sprintf("%s: %d of %d sessions failed; the first: %v", path.via, r.failed, r.n+r.failed, r.firstErr)
			if b.Log(msg); r.failed > max(3, r.n/20) {
				b.Error(msg)
			}
		}
	}
	rampart, openssh := results["rampart"], results["openssh"]
	b.ReportMetric(float64(rampart.n)/rampart.elapsed.Seconds()/(float64(openssh.n)/openssh.elapsed.Seconds()), "x-rampart/openssh")
}

// benchClientIP is the loopback address benchmark client i connects from.
func benchClientIP(i int) string { return fmt.Sprintf("127.%d.1.%d", runBlock, 1+i%250) }

func (e *benchEnv) oneSession(via, server, src string) error {
	p, err := e.dialProxied(via, server, src)
	if err != nil {
		return err
	}
	defer p.Close()
	s, err := p.inner.NewSession()
	if err != nil {
		return fmt.Errorf("open a session: %w", err)
	}
	defer s.Close()
	if err := s.Run("true"); err != nil {
		return fmt.Errorf("run true: %w", err)
	}
	return nil
}

// benchIdle holds n idle proxied sessions to server open at once, each its
// own outer connection, inner connection and session (on the sshd target:
// an idle cat, which ends by itself when the session closes where a sleep
// would outlive it), and reads rampartd's RSS as they open. On the sshd
// target it also sums the target's proportional set size (sshd's per-session
// processes and the cats).
func (e *benchEnv) benchIdle(b *testing.B, server string, n int, tg *Target, drained func() error) {
	pid := e.node.current().cmd.Process.Pid
	for b.Loop() {
		base := procStatusKiB(b, pid, "VmRSS")
		var targetBase int64
		if tg != nil {
			targetBase = targetPss(tg)
		}
		var (
			mu       sync.Mutex
			sessions []*proxied
			next     atomic.Int64
			failed   = make(chan error, 1)
		)
		start, cpu0 := time.Now(), procCPU(b, pid)
		lastAt, lastN, lastRSS, half := start, 0, base, int64(0)
		for _, cp := range []int{n / 10, n / 4, n / 2, 3 * n / 4, n} {
			var wg sync.WaitGroup
			for i := range *benchRateConc {
				wg.Go(func() {
					for len(failed) == 0 && next.Add(1) <= int64(cp) {
						p, err := e.openIdle(server, benchClientIP(i))
						if err != nil {
							select {
							case failed <- err:
							default:
							}
							return
						}
						mu.Lock()
						sessions = append(sessions, p)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			next.Store(int64(cp))
			if len(failed) > 0 {
				for _, p := range sessions {
					p.Close()
				}
				b.Fatalf("idle session %d of %d: %v", len(sessions)+1, n, <-failed)
			}
			rss, now := procStatusKiB(b, pid, "VmRSS"), time.Now()
			b.Logf("%s: %5d idle sessions: rampartd VmRSS %6.1f MiB; since the last checkpoint %+.1f KiB per session opened, %.0f opened/s",
				server, cp, float64(rss)/1024, float64(rss-lastRSS)/float64(cp-lastN), float64(cp-lastN)/now.Sub(lastAt).Seconds())
			if lastAt, lastN, lastRSS = now, cp, rss; cp == n/2 {
				half = rss
			}
		}
		opened, openCPU := time.Since(start), procCPU(b, pid)-cpu0
		rss, hwm := procStatusKiB(b, pid, "VmRSS"), procStatusKiB(b, pid, "VmHWM")
		b.ReportMetric(float64(n), "sessions")
		b.ReportMetric(float64(rss)/1024, "MiB-rampartd-rss")
		b.ReportMetric(float64(rss-base)/float64(n), "KiB/session-rampartd")
		// The second half's growth alone: no start-up or warm-up in it.
		b.ReportMetric(float64(rss-half)/float64(n-n/2), "KiB/session-rampartd-2nd-half")
		b.ReportMetric(float64(n)/opened.Seconds(), "opened/s")
		b.ReportMetric(float64(openCPU.Microseconds())/1000/float64(n), "rampartd-cpu-ms/open")
		b.Logf("%s: %d idle sessions opened in %s; rampartd VmRSS %.1f MiB (was %.1f, peak %.1f): %.1f KiB per session; %.1f ms of rampartd CPU per open",
			server, n, opened.Round(time.Millisecond), float64(rss)/1024, float64(base)/1024, float64(hwm)/1024, float64(rss-base)/float64(n), float64(openCPU.Microseconds())/1000/float64(n))
		if tg != nil {
			pss := targetPss(tg)
			b.ReportMetric(float64(pss-targetBase)/float64(n), "KiB/session-target-sshd")
			b.Logf("%s: the target's processes: %.1f MiB PSS in all, %.1f KiB per session", server, float64(pss)/1024, float64(pss-targetBase)/float64(n))
		}
		if *benchProfiles != "" {
			saveProfiles(b, e.node.IP, server)
		}
		closeStart := time.Now()
		for _, p := range sessions {
			p.Close()
		}
		fatalIf(b, waitFor(waitLong, drained), "close the idle sessions")
		b.Logf("%s: closed in %s; rampartd VmRSS now %.1f MiB", server, time.Since(closeStart).Round(time.Millisecond), float64(procStatusKiB(b, pid, "VmRSS"))/1024)
	}
}

// openIdle opens one idle proxied session through the node.
func (e *benchEnv) openIdle(server, src string) (*proxied, error) {
	p, err := e.dialProxied("rampart", server, src)
	if err != nil {
		return nil, err
	}
	s, err := p.inner.NewSession()
	if err != nil {
		p.Close()
		return nil, err
	}
	p.sess = s
	// A stdin pipe keeps the session's input open (x/crypto sends EOF at
	// once without one).
	if _, err = s.StdinPipe(); err == nil {
		err = s.Start("cat")
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}
