package e2e

// The target harness: a target server is Debian's OpenSSH sshd in a private
// mount namespace that has its own /etc (a copy of this machine's, minus its
// host keys), /home, /var/log and /run, all under the test's t.TempDir(),
// listening on its own loopback address. Commands run inside with Exec see the
// target's files, so useradd, visudo -cf and sshd -t work on the target and
// never on this machine's /etc.
//
// The namespace is held by a process of its own (unshare … sleep), so it
// exists before sshd starts and outlives sshd restarts; sshd and every Exec
// enter it with nsenter. That holder is reaped only when the target is torn
// down: until then its pid cannot be reused, so nsenter cannot land in another
// namespace. As a second guard, every command inside first checks for a marker
// file that only the target's /etc holds.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths inside a target (as its own processes see them).
const (
	targetMarker        = "/etc/rampart-e2e-target"
	targetSSHDConfig    = "/etc/ssh/sshd_config"
	targetSSHDDropInDir = "/etc/ssh/sshd_config.d"
	targetTrustedCAFile = "/etc/ssh/trusted_user_ca_keys"
	targetPrincipalsDir = "/etc/ssh/principals"
	targetHostKey       = "/etc/ssh/ssh_host_ed25519_key"
	targetHostCertFile  = "/etc/ssh/ssh_host_ed25519_key-cert.pub"
	targetPidFile       = "/run/sshd.pid"
)

// targetExecTimeout bounds one Exec.
const targetExecTimeout = 30 * time.Second

// targetPrivateDirs are the directories a target has its own copy of. /etc is
// a copy of this machine's; the others start empty (plus what sshd and PAM
// expect in them). /run is private because PAM (pam_motd, utmp) and sshd
// (its privilege separation directory) write there, and so that name
// lookups never reach a caching daemon of this machine.
var targetPrivateDirs = []string{"/etc", "/home", "/var/log", "/run", "/var/mail"}

// targetPath is the PATH of commands run inside a target.
const targetPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// TargetConfig describes a target server.
type TargetConfig struct {
	// Name labels the target in logs and is a principal of the host
	// certificate tests usually sign; "target" if empty.
	Name string
	// IP is the loopback address sshd listens on (newIP).
	IP string
	// Port is sshd's port; 22 if zero.
	Port int
	// UsePAM sets sshd's UsePAM. Debian's default is yes; accounts and
	// certificates behave differently under the two settings (see DESIGN's
	// pitfalls), so tests should run both.
	UsePAM bool
	// HostKeyTypes are the host key types to generate (ssh-keygen -t);
	// empty means what `ssh-keygen -A` makes (rsa, ecdsa, ed25519). ed25519
	// is always generated: HostKey and SetHostCertificate use it.
	HostKeyTypes []string
	// ExtraConfig is copied into sshd_config after the Include of the
	// drop-in directory and before the harness's own settings, so that (sshd
	// keeping the first value it reads) it overrides them.
	ExtraConfig string
}

// Target is one target server. NewTarget prepares it (namespace, /etc, host
// keys, sshd_config) without starting sshd; Start starts sshd.
type Target struct {
	t   testing.TB
	cfg TargetConfig
	// Dir is the target's tree: Dir/etc, Dir/home, ... are what the target
	// sees as /etc, /home, ...; Dir/sshd.log is sshd's log.
	Dir string

	holder   *exec.Cmd
	holderNS string // the holder's mount namespace, "mnt:[N]"

	mu       sync.Mutex
	hostCert []byte
	sshd     *targetSSHD // current run, nil before Start
	runs     int
}

// targetSSHD is one run of sshd.
type targetSSHD struct {
	cmd   *exec.Cmd
	done  chan struct{}
	state *os.ProcessState
}

// StartTarget prepares a target and starts its sshd.
func StartTarget(t testing.TB, cfg TargetConfig) *Target {
	t.Helper()
	tg := NewTarget(t, cfg)
	fatalIf(t, tg.Start(), "start target "+tg.Name())
	return tg
}

// NewTarget creates the target's tree, starts the process that holds its
// mount namespace, generates fresh host keys and writes sshd_config, an empty
// TrustedUserCAKeys file and the principals directory. It does not start
// sshd. Everything that runs in the namespace is killed in t.Cleanup, and sshd's
// log tail is printed if the test failed.
func NewTarget(t testing.TB, cfg TargetConfig) *Target {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "target"
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if ip := net.ParseIP(cfg.IP); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		t.Fatalf("target %s: IP %q is not an IPv4 loopback address", cfg.Name, cfg.IP)
	}
	start := time.Now()
	tg := &Target{t: t, cfg: cfg, Dir: t.TempDir()}
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(tg.cleanup)
	var phases []string
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"copy /etc", tg.makeTree},
		{"namespace", tg.startHolder},
		{"host keys", tg.generateHostKeys},
		{"sshd_config", tg.writeSSHDConfig},
	} {
		t0 := time.Now()
		fatalIf(t, step.do(), "target "+cfg.Name+": "+step.name)
		phases = append(phases, fmt.Sprintf("%s %s", step.name, time.Since(t0).Round(time.Millisecond)))
	}
	t.Logf("target %s (%s): prepared in %s (%s)", cfg.Name, tg.Addr(), time.Since(start).Round(time.Millisecond), strings.Join(phases, ", "))
	return tg
}

// Name is the target's label.
func (tg *Target) Name() string { return tg.cfg.Name }

// IP is the loopback address sshd listens on.
func (tg *Target) IP() string { return tg.cfg.IP }

// Port is sshd's port.
func (tg *Target) Port() int { return tg.cfg.Port }

// Addr is sshd's listen address, IP:port.
func (tg *Target) Addr() string { return net.JoinHostPort(tg.cfg.IP, strconv.Itoa(tg.cfg.Port)) }

// UsePAM reports sshd's UsePAM setting.
func (tg *Target) UsePAM() bool { return tg.cfg.UsePAM }

// Path maps a path inside the target (/etc/..., /home/..., /var/log/...,
// /run/..., /var/mail/...) to the file on this machine that holds it, for
// reading or writing the target's files without entering it. Other paths are
// this machine's own, and Path fails the test.
func (tg *Target) Path(inside string) string {
	clean := filepath.Clean(inside)
	for _, d := range targetPrivateDirs {
		if clean == d || strings.HasPrefix(clean, d+"/") {
			return filepath.Join(tg.Dir, clean)
		}
	}
	tg.t.Fatalf("target %s: %s is not in a private directory of the target (%s)", tg.cfg.Name, inside, strings.Join(targetPrivateDirs, ", "))
	return ""
}

// LogPath is the file holding sshd's log (its stderr, -e), every run appended.
func (tg *Target) LogPath() string { return filepath.Join(tg.Dir, "sshd.log") }

// makeTree copies this machine's /etc (without its host keys) and makes the
// other private directories.
func (tg *Target) makeTree() error {
	// cp -a keeps modes, owners, links and xattrs: sshd's StrictModes and
	// PAM care about them.
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(tg.Dir, "etc")).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a /etc: %w: %s", err, out)
	}
	etc := filepath.Join(tg.Dir, "etc")
	// A target gets keys of its own, and this machine's private host keys
	// have no business in a test's tree.
	keys, err := filepath.Glob(filepath.Join(etc, "ssh", "ssh_host_*"))
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	// The drop-in directory belongs to the target (the agent writes there);
	// none of this machine's drop-ins carry over.
	dropIns := filepath.Join(etc, "ssh", "sshd_config.d")
	if err := os.RemoveAll(dropIns); err != nil {
		return err
	}
	if err := os.Mkdir(dropIns, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(etc, "ssh", "principals"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "ssh", "trusted_user_ca_keys"), nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "rampart-e2e-target"), []byte(tg.cfg.Name+"\n"), 0o644); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"home", 0o755},
		{"var/log", 0o755},
		{"var/mail", 0o2775},
		{"run", 0o755},
		{"run/sshd", 0o755}, // sshd's privilege separation directory
		{"run/lock", 0o1777},
		{"run/user", 0o755},
		{"run/sudo", 0o711},
	} {
		p := filepath.Join(tg.Dir, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		// MkdirAll's mode is filtered by the umask and ignores sticky and
		// setgid bits.
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	// /dev/shm is reached through /run/shm on Debian.
	if err := os.Symlink("/dev/shm", filepath.Join(tg.Dir, "run", "shm")); err != nil {
		return err
	}
	// The log files sshd, PAM and useradd keep, as Debian ships them.
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"lastlog", 0o664}, {"wtmp", 0o664}, {"btmp", 0o660}, {"faillog", 0o644}} {
		if err := os.WriteFile(filepath.Join(tg.Dir, "var", "log", f.name), nil, f.mode); err != nil {
			return err
		}
	}
	// The mail spool's group, as on Debian, if this machine has one.
	if out, err := exec.Command("getent", "group", "mail").Output(); err == nil {
		if f := strings.Split(strings.TrimSpace(string(out)), ":"); len(f) >= 3 {
			if gid, err := strconv.Atoi(f[2]); err == nil {
				_ = os.Chown(filepath.Join(tg.Dir, "var", "mail"), 0, gid)
			}
		}
	}
	return nil
}

// startHolder starts the process that owns the namespace: unshare makes a
// private mount namespace (propagation private, so nothing mounted inside
// reaches this machine), a shell bind-mounts the tree's directories over the
// real ones, says "ready" and becomes a sleep.
func (tg *Target) startHolder() error {
	var script strings.Builder
	script.WriteString("set -eu\n")
	for _, d := range targetPrivateDirs {
		m := fmt.Sprintf("mount --bind %s %s", shellQuote(filepath.Join(tg.Dir, d)), d)
		if d == "/var/mail" {
			// Not every system has a mail spool; useradd only needs one if
			// /etc/default/useradd asks for it.
			m = fmt.Sprintf("if [ -d %s ]; then %s; fi", d, m)
		}
		script.WriteString(m + "\n")
	}
	fmt.Fprintf(&script, "test -f %s\n", targetMarker)
	script.WriteString("echo ready\nexec sleep infinity\n")

	outPath := filepath.Join(tg.Dir, "holder.out")
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script.String())
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=" + targetPath}
	// The namespace dies with the test binary, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// No Wait until cleanup (see the file comment): an exited holder stays
	// a zombie, whose namespace link cannot be read or entered.
	tg.holder = cmd
	ownNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	err = waitFor(waitLong, func() error {
		b, _ := os.ReadFile(outPath)
		if !tg.holderAlive() {
			return stopWaiting(fmt.Errorf("unshare exited: %s", strings.TrimSpace(string(b))))
		}
		if !bytes.Contains(b, []byte("ready\n")) {
			return fmt.Errorf("holder output so far %q", b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err != nil {
		return err
	}
	if ns == ownNS {
		return fmt.Errorf("the holder shares this machine's mount namespace %s", ns)
	}
	tg.holderNS = ns
	// The namespace's own view, checked once: /etc is the copy.
	got, err := tg.Exec(context.Background(), "cat", targetMarker)
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != tg.cfg.Name {
		return fmt.Errorf("%s inside the namespace reads %q, want %q", targetMarker, got, tg.cfg.Name)
	}
	return nil
}

// holderAlive reports whether the holder is running (neither gone nor a
// zombie).
func (tg *Target) holderAlive() bool { return processAlive(tg.holder.Process.Pid) }

// processAlive reports whether pid is running: neither gone nor a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Command returns a command that runs argv inside the target's namespace,
// as root, with a minimal environment (PATH, LANG, HOME=/root); the caller
// may add to Env, set Stdout/Stderr and Start it (a long-running agent, say).
// It dies with the test binary, and, as every process in the namespace, in
// t.Cleanup. It fails if the target's namespace is gone.
func (tg *Target) Command(ctx context.Context, argv ...string) (*exec.Cmd, error) {
	if err := tg.checkNamespace(); err != nil {
		return nil, fmt.Errorf("target %s: %s: %w", tg.cfg.Name, strings.Join(argv, " "), err)
	}
	// The shell refuses to run argv anywhere /etc is not a target's.
	guard := fmt.Sprintf(`[ -f %s ] || { echo "not inside a target's namespace" >&2; exit 125; }; exec "$@"`, targetMarker)
	args := append([]string{"--target", strconv.Itoa(tg.holder.Process.Pid), "--mount", "--", "/bin/sh", "-c", guard, "target-exec"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{"PATH=" + targetPath, "LANG=C.UTF-8", "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// checkNamespace makes sure the holder still owns the namespace the target
// was made with, before anything is run in it.
func (tg *Target) checkNamespace() error {
	if tg.holder == nil || tg.holder.Process == nil || tg.holderNS == "" {
		return errors.New("the target's namespace does not exist (never made, or killed)")
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", tg.holder.Process.Pid))
	if err != nil {
		return fmt.Errorf("the target's namespace is gone: %w", err)
	}
	if ns != tg.holderNS {
		return fmt.Errorf("the holder is in namespace %s, not the target's %s", ns, tg.holderNS)
	}
	return nil
}

// Exec runs argv inside the target and returns its stdout. A command that
// exits non-zero returns an error holding its exit status (an *exec.ExitError
// in the chain) and its stderr. It is bounded by ctx and by
// targetExecTimeout.
func (tg *Target) Exec(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, targetExecTimeout)
	defer cancel()
	cmd, err := tg.Command(ctx, argv...)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("target %s: %s: %w; stderr: %s", tg.cfg.Name, strings.Join(argv, " "), ctx.Err(), strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("target %s: %s: %w; stderr: %s", tg.cfg.Name, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Start checks sshd_config (sshd -t) and starts sshd inside the target
// (-D, logging to its stderr with -e, which goes to LogPath), and waits until
// it says it listens on Addr.
func (tg *Target) Start() error {
	if tg.Running() {
		return fmt.Errorf("target %s: sshd is already running", tg.cfg.Name)
	}
	if err := tg.checkNamespace(); err != nil {
		return fmt.Errorf("target %s: %w", tg.cfg.Name, err)
	}
	if err := tg.CheckConfig(); err != nil {
		return fmt.Errorf("target %s: %w", tg.cfg.Name, err)
	}
	start := time.Now()
	offset := tg.LogOffset()
	log, err := os.OpenFile(tg.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	tg.mu.Lock()
	tg.runs++
	fmt.Fprintf(log, "==== harness: run %d of sshd on %s\n", tg.runs, tg.Addr())
	tg.mu.Unlock()
	// sshd must be started by its absolute path: it re-executes itself on
	// SIGHUP and for every connection.
	cmd, err := tg.Command(context.Background(), "/usr/sbin/sshd", "-D", "-e", "-f", targetSSHDConfig)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("target %s: start sshd: %w", tg.cfg.Name, err)
	}
	run := &targetSSHD{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		run.state = cmd.ProcessState
		close(run.done)
	}()
	tg.mu.Lock()
	tg.sshd = run
	tg.mu.Unlock()
	if _, err := tg.waitListening(offset); err != nil {
		return err
	}
	tg.t.Logf("target %s (%s): sshd (UsePAM %v) listening after %s", tg.cfg.Name, tg.Addr(), tg.cfg.UsePAM, time.Since(start).Round(time.Millisecond))
	return nil
}

// waitListening waits for sshd's "Server listening on IP port N." after
// offset in the log.
func (tg *Target) waitListening(offset int64) (string, error) {
	re := regexp.MustCompile(`Server listening on ` + regexp.QuoteMeta(tg.cfg.IP) + ` port ` + strconv.Itoa(tg.cfg.Port) + `\.`)
	line, err := tg.WaitLogFrom(offset, waitLong, re)
	if err != nil {
		return "", fmt.Errorf("target %s: sshd listening: %w", tg.cfg.Name, err)
	}
	return line, nil
}

// Running reports whether sshd is running.
func (tg *Target) Running() bool {
	tg.mu.Lock()
	run := tg.sshd
	tg.mu.Unlock()
	if run == nil {
		return false
	}
	select {
	case <-run.done:
		return false
	default:
		return true
	}
}

// Reload sends sshd SIGHUP (as an agent does after changing its config) and
// waits until it listens again. Connections already open keep their sshd.
func (tg *Target) Reload() error {
	tg.mu.Lock()
	run := tg.sshd
	tg.mu.Unlock()
	if !tg.Running() {
		return fmt.Errorf("target %s: sshd is not running", tg.cfg.Name)
	}
	offset := tg.LogOffset()
	if err := run.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("target %s: reload sshd: %w", tg.cfg.Name, err)
	}
	_, err := tg.waitListening(offset)
	return err
}

// Stop ends sshd (SIGTERM, then SIGKILL after waitStop). Sessions already
// open keep running; cleanup ends them with everything else in the target.
func (tg *Target) Stop() error {
	tg.mu.Lock()
	run := tg.sshd
	tg.mu.Unlock()
	if !tg.Running() {
		return nil
	}
	_ = run.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-run.done:
		return nil
	case <-time.After(waitStop):
	}
	_ = run.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-run.done:
		return fmt.Errorf("target %s: sshd ignored SIGTERM for %s; killed", tg.cfg.Name, waitStop)
	case <-time.After(waitStop):
		return fmt.Errorf("target %s: sshd survived SIGKILL for %s", tg.cfg.Name, waitStop)
	}
}

// LogOffset is the current size of sshd's log: pass it to WaitLogFrom to
// match only what sshd logs after this point.
func (tg *Target) LogOffset() int64 {
	fi, err := os.Stat(tg.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Log returns sshd's whole log.
func (tg *Target) Log() string {
	b, _ := os.ReadFile(tg.LogPath())
	return string(b)
}

// WaitLog waits until a line of sshd's log matches re and returns it.
func (tg *Target) WaitLog(timeout time.Duration, re *regexp.Regexp) (string, error) {
	return tg.WaitLogFrom(0, timeout, re)
}

// WaitLogFrom waits until a line of sshd's log after offset (see LogOffset)
// matches re and returns it. It gives up early if sshd is not running.
func (tg *Target) WaitLogFrom(offset int64, timeout time.Duration, re *regexp.Regexp) (string, error) {
	var found string
	err := waitFor(timeout, func() error {
		// Read before checking that sshd runs, so that the last lines of
		// one that just exited are still searched.
		running := tg.Running()
		lines, err := readLinesFrom(tg.LogPath(), offset)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return stopWaiting(err)
		}
		for _, l := range lines {
			if re.MatchString(l) {
				found = l
				return nil
			}
		}
		if !running {
			return stopWaiting(fmt.Errorf("sshd is not running (%s); no line matches %q; log tail:\n%s", tg.exitDescription(), re, lastLines(tg.LogPath(), 10)))
		}
		return fmt.Errorf("no line of the sshd log matches %q", re)
	})
	if err != nil {
		return "", fmt.Errorf("target %s: %w", tg.cfg.Name, err)
	}
	return found, nil
}

// readLinesFrom returns the complete lines of path after offset, without
// their line ends.
func readLinesFrom(path string, offset int64) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	// A line still being written is not a line yet.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil, nil
	}
	lines := strings.Split(string(b), "\n")
	// sshd ends the lines it writes to stderr with \r\n.
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

func (tg *Target) exitDescription() string {
	tg.mu.Lock()
	run := tg.sshd
	tg.mu.Unlock()
	switch {
	case run == nil:
		return "never started"
	case tg.Running():
		return "running"
	}
	return run.state.String()
}

// namespacePids lists the live processes in the target's mount namespace.
// Zombies have no namespace link and are not listed.
func (tg *Target) namespacePids() []int {
	if tg.holderNS == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && ns == tg.holderNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Kill ends every process in the target's namespace (sshd, sessions, the
// processes of Exec and Command, the holder), and with the last one the
// namespace and its mounts. The target cannot be used afterwards.
func (tg *Target) Kill() error {
	if tg.holder == nil || tg.holder.Process == nil {
		return nil
	}
	// Kill sshd first so that it forks no new sessions, then whatever is
	// left, until nothing is left: a process may fork while being killed.
	if tg.Running() {
		tg.mu.Lock()
		run := tg.sshd
		tg.mu.Unlock()
		_ = run.cmd.Process.Signal(syscall.SIGKILL)
	}
	// The holder is killed last: while it runs, the namespace exists and
	// its inode cannot be given to another namespace, so every process the
	// scan finds is this target's. Once the holder is gone (or if it died on
	// its own), an inode match could be another test run's target: nothing
	// is killed by inode then.
	holderPid := tg.holder.Process.Pid
	var err error
	if tg.holderAlive() {
		err = waitFor(waitStop, func() error {
			if !tg.holderAlive() {
				return stopWaiting(errors.New("the namespace's holder died while the target was torn down; processes left in it were not looked for"))
			}
			var left []int
			for _, pid := range tg.namespacePids() {
				if pid != holderPid {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					left = append(left, pid)
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("processes %v still in the namespace", left)
			}
			return nil
		})
	}
	// Reap the holder (killed now, or exited before).
	_ = tg.holder.Process.Signal(syscall.SIGKILL)
	_ = tg.holder.Wait()
	tg.holder.Process = nil
	if err != nil {
		return fmt.Errorf("target %s: %w", tg.cfg.Name, err)
	}
	return nil
}

func (tg *Target) cleanup() {
	failed := tg.t.Failed()
	if err := tg.Kill(); err != nil {
		tg.t.Logf("cleanup: %v", err)
	}
	if failed {
		tg.t.Logf("==== target %s (%s, UsePAM %v): sshd log (last %d lines):\n%s", tg.cfg.Name, tg.Addr(), tg.cfg.UsePAM, logTailLines, lastLines(tg.LogPath(), logTailLines))
	}
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so that sshd never reads half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
