package e2e

// The installer tests: install.sh exactly as a node serves it, fetched with
// curl and run with bash inside a target's mount namespace, the way an
// operator runs `curl … | sudo bash -s -- --token-file …`. The target's /etc
// is its own; /usr/local and /var/lib, where the installer also writes, get
// an overlay each, so this machine's stay untouched. There is no systemd in
// the test container: a systemctl stand-in first on PATH records what it is
// asked and, for `enable --now`, starts the unit's ExecStart line as systemd
// would, so that the command line the installer wrote is the one that runs.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// Paths the installer writes inside a target.
const (
	installedBin    = "/usr/local/bin/rampart-agent"
	installedUnit   = "/etc/systemd/system/rampart-agent.service"
	installedConfig = "/etc/rampart/rampart-agent.yaml"
	installedData   = "/var/lib/rampart-agent"
	installedToken  = installedData + "/enrollment.token"
	// The operator's copy of the token, inside the target.
	operatorToken = "/etc/rampart-install.token"
)

// setupEnrollNode starts a dev node (extra: more of its config), binds
// alice's key, and creates project web granted to engineering.
func setupEnrollNode(t *testing.T, name, extra string) (*policyEnv, string) {
	t.Helper()
	node := StartDevNodeWith(t, name, newIP(t, name+" node"), extra)
	return grantedEnv(t, node), node.ConfigPath
}

// installTarget is a target prepared for the installer.
type installTarget struct {
	*Target
	// shim holds the systemctl and curl stand-ins and their logs.
	shim string
	// usrLocal and varLib are the overlays' upper directories: what the
	// installer (and the agent) wrote under /usr/local and /var/lib.
	usrLocal, varLib string
}

// systemctlShim stands in for systemd's systemctl: it logs its arguments
// and, for enable --now, starts ExecStart of the unit the installer wrote
// unless the unit's ConditionPathExists=! file exists, as systemd does.
// Other units are inactive (the agent asks about ssh.service).
const systemctlShim = `#!/bin/sh
shim=$(dirname "$0")
echo "$*" >>"$shim/systemctl.log"
unit=/etc/systemd/system/rampart-agent.service
case "$*" in
"daemon-reload" | "enable rampart-agent") exit 0 ;;
"is-active --quiet rampart-agent")
	[ -f "$shim/agent.pid" ] && kill -0 "$(cat "$shim/agent.pid")" 2>/dev/null && exit 0
	exit 3 ;;
"is-active --quiet "*) exit 3 ;;
"enable --now rampart-agent" | "restart rampart-agent")
	# Starting an active unit does nothing, as with systemd.
	if [ "$1" = enable ] && [ -f "$shim/agent.pid" ] && kill -0 "$(cat "$shim/agent.pid")" 2>/dev/null; then
		exit 0
	fi
	if [ "$1" = restart ] && [ -f "$shim/agent.pid" ]; then
		pid=$(cat "$shim/agent.pid")
		kill "$pid" 2>/dev/null
		while kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*zombie' "/proc/$pid/status" 2>/dev/null; do sleep 0.1; done
	fi
	cond=$(sed -n 's/^ConditionPathExists=!//p' "$unit")
	if [ -n "$cond" ] && [ -e "$cond" ]; then
		echo "condition failed: $cond exists" >>"$shim/systemctl.log"
		exit 0
	fi
	cmd=$(sed -n 's/^ExecStart=//p' "$unit")
	[ -n "$cmd" ] || { echo "systemctl: no ExecStart in $unit" >&2; exit 1; }
	echo "$cmd" >"$shim/execstart"
	sh -c "exec $cmd" </dev/null >>"$shim/agent.log" 2>&1 &
	echo $! >"$shim/agent.pid"
	exit 0 ;;
esac
echo "systemctl stand-in: not expected: $*" >&2
exit 1
`

// curlShim logs every curl command line before running the real curl.
const curlShim = `#!/bin/sh
echo "$*" >>"$(dirname "$0")/curl.log"
exec /usr/bin/curl "$@"
`

// newInstallTarget makes a target on ip (sshd not started) with overlays on
// /usr/local and /var/lib, /run/systemd/system (so the installer sees
// systemd), and the stand-ins.
func newInstallTarget(t *testing.T, name string) *installTarget {
	t.Helper()
	// Made before the target, so that they are removed after it is gone.
	it := &installTarget{shim: t.TempDir()}
	overlays := t.TempDir()
	it.Target = NewTarget(t, TargetConfig{Name: name, IP: newIP(t, name), UsePAM: true, HostKeyTypes: []string{"ed25519"}})
	for dir, upper := range map[string]*string{"/usr/local": &it.usrLocal, "/var/lib": &it.varLib} {
		base := filepath.Join(overlays, strings.ReplaceAll(strings.Trim(dir, "/"), "/", "-"))
		*upper = filepath.Join(base, "upper")
		work := filepath.Join(base, "work")
		fatalIf(t, os.MkdirAll(*upper, 0o755))
		fatalIf(t, os.MkdirAll(work, 0o755))
		_, err := it.Exec(context.Background(), "mount", "-t", "overlay", "overlay", "-o",
			"lowerdir="+dir+",upperdir="+*upper+",workdir="+work, dir)
		fatalIf(t, err, "overlay on "+dir)
	}
	fatalIf(t, os.MkdirAll(it.Path("/run/systemd/system"), 0o755))
	fatalIf(t, os.WriteFile(filepath.Join(it.shim, "systemctl"), []byte(systemctlShim), 0o755))
	fatalIf(t, os.WriteFile(filepath.Join(it.shim, "curl"), []byte(curlShim), 0o755))
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"systemctl.log", "curl.log", "agent.log"} {
				t.Logf("==== %s on %s:\n%s", f, name, lastLines(filepath.Join(it.shim, f), logTailLines))
			}
		}
	})
	return it
}

// install runs `curl -fsSL --cacert CA https://node/install.sh | bash -s --
// args` inside the target, with the stand-ins first on PATH, and returns its
// exit code and output.
func (it *installTarget) install(t *testing.T, node *DevNode, caFile string, args ...string) (int, string) {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	pipeline := fmt.Sprintf("set -o pipefail; curl -fsSL --cacert %s https://%s/install.sh | bash -s -- %s",
		shellQuote(caFile), node.APIAddr(), strings.Join(quoted, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, err := it.Command(ctx, "bash", "-c", pipeline)
	fatalIf(t, err)
	cmd.Env = append(cmd.Env, "PATH="+it.shim+":"+targetPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("install.sh: %v\n%s", err, out.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("install.sh still running after 2m:\n%s", out.String())
	}
	t.Logf("install.sh on %s: %s\n%s", it.Name(), cmd.ProcessState, strings.TrimSpace(out.String()))
	return cmd.ProcessState.ExitCode(), out.String()
}

func (it *installTarget) shimLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(it.shim, name))
	return string(b)
}

// agentPid is the pid of the agent the systemctl stand-in started, or 0.
func (it *installTarget) agentPid() int {
	b, err := os.ReadFile(filepath.Join(it.shim, "agent.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// agentAlive fails a wait at once when the started agent has exited.
func (it *installTarget) agentAlive() error {
	pid := it.agentPid()
	if pid == 0 {
		return stopWaiting(errors.New("no agent was started"))
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return stopWaiting(fmt.Errorf("the agent (pid %d) exited; log:\n%s", pid, lastLines(filepath.Join(it.shim, "agent.log"), logTailLines)))
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return stopWaiting(fmt.Errorf("the agent (pid %d) exited; log:\n%s", pid, lastLines(filepath.Join(it.shim, "agent.log"), logTailLines)))
	}
	return nil
}

// writeClusterCA puts the cluster CA where a target can read it (/tmp is
// shared), as an operator copies it from a node's data dir.
func writeClusterCA(t *testing.T, node *DevNode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster-ca.pem")
	fatalIf(t, os.WriteFile(path, node.c.CAPEM(), 0o644))
	return path
}

// hostInstallDigest is hostEtcDigest plus where the installer writes.
func hostInstallDigest(t testing.TB) map[string]string {
	t.Helper()
	out := hostEtcDigest(t)
	for _, p := range []string{installedBin, installedUnit, "/etc/rampart", installedData} {
		_, err := os.Lstat(p)
		out[p+" exists"] = strconv.FormatBool(err == nil)
	}
	return out
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	fatalIf(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAgentInstall(t *testing.T) {
	checkHostUnchanged(t, hostInstallDigest)

	e, _ := setupEnrollNode(t, "install", "")
	caFile := writeClusterCA(t, e.node)
	agentBin, err := binary("rampart-agent")
	fatalIf(t, err)
	var who struct {
		UID uint32 `json:"uid"`
	}
	r := runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + e.node.IP, "whoami", "--json"})
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &who), "whoami --json: "+r.stdout+r.stderr)

	t.Run("ok/install-enroll-provision", func(t *testing.T) {
		tg := newInstallTarget(t, "web-inst")
		fatalIf(t, tg.Start())
		// The token file made the operator's way: ssh admin@bastion tokens
		// create web > token (stdout is the token alone; the words around
		// it go to stderr).
		r := e.admin(t, "tokens", "create", "web", "--uses", "1")
		if r.code != 0 || !strings.Contains(r.stderr, "shown only this once") {
			t.Fatalf("tokens create: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		token := strings.TrimSpace(r.stdout)
		fatalIf(t, os.WriteFile(tg.Path(operatorToken), []byte(r.stdout), 0o600))
		code, out := tg.install(t, e.node, caFile, "--token-file", operatorToken, "--name", "web-inst", "--addr", tg.IP())
		if code != 0 {
			t.Fatalf("install.sh exited %d", code)
		}
		if tok, _ := api.ParseToken(token); strings.Contains(out, tok.Secret) {
			t.Error("install.sh printed the token's secret")
		}

		// The binary is the node's, byte for byte, executable.
		bin := filepath.Join(tg.usrLocal, "bin", "rampart-agent")
		if fileSHA256(t, bin) != fileSHA256(t, agentBin) {
			t.Errorf("%s differs from the node's rampart-agent", installedBin)
		}
		if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, mode %v; want 0755", installedBin, err, fi.Mode().Perm())
		}
		// It was fetched over the pinned CA, the CA itself first.
		curls := strings.Split(tg.shimLog("curl.log"), "\n")
		caAt := slices.IndexFunc(curls, func(l string) bool { return strings.HasSuffix(l, "/v1/ca/tls") })
		binAt := slices.IndexFunc(curls, func(l string) bool { return strings.Contains(l, "/v1/agents/binary?os=linux&arch=") })
		if caAt < 0 || binAt < caAt || !strings.Contains(curls[binAt], "--cacert") {
			t.Errorf("curl calls: want the CA fetched, then the binary with --cacert; got:\n%s", strings.Join(curls, "\n"))
		}

		// The unit, valid for systemd, starting the installed binary.
		unit := string(mustRead(t, tg.Path(installedUnit)))
		for _, want := range []string{"ConditionPathExists=!" + api.DisableAutostartFile + "\n", "ExecStart=" + installedBin + " --config " + installedConfig + "\n",
			"Restart=on-failure\n", "ProtectSystem=yes\n", "WantedBy=multi-user.target\n"} {
			if !strings.Contains(unit, want) {
				t.Errorf("the unit lacks %q:\n%s", want, unit)
			}
		}
		for _, never := range []string{"ProtectHome", "NoNewPrivileges", "ProtectSystem=full", "ProtectSystem=strict", "CapabilityBoundingSet"} {
			if strings.Contains(unit, never) {
				t.Errorf("the unit has %s, which would stop useradd, visudo or the sshd reload", never)
			}
		}
		verify, err := tg.Command(context.Background(), "systemd-analyze", "verify", installedUnit)
		fatalIf(t, err)
		vout, err := verify.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(vout)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", installedUnit, err, vout)
		}
		if got := tg.shimLog("systemctl.log"); !strings.Contains(got, "daemon-reload\nenable --now rampart-agent\n") {
			t.Errorf("systemctl calls:\n%s", got)
		}
		if got := strings.TrimSpace(tg.shimLog("execstart")); got != installedBin+" --config "+installedConfig {
			t.Errorf("started %q", got)
		}
		cfg := string(mustRead(t, tg.Path(installedConfig)))
		for _, want := range []string{`- "` + e.node.APIAddr() + `"`, `name: "web-inst"`, `addr: "` + tg.IP() + `"`, "token_file: " + installedToken} {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s lacks %q:\n%s", installedConfig, want, cfg)
			}
		}

		// The agent enrolls (using up the token) and provisions alice.
		fatalIf(t, waitFor(waitLong, func() error {
			if err := tg.agentAlive(); err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(tg.varLib, "rampart-agent", "identity.json")); err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(tg.varLib, "rampart-agent", "enrollment.token")); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("the token is still there (%v)", err)
			}
			out, err := tg.Exec(context.Background(), "id", "-u", "alice")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != strconv.FormatUint(uint64(who.UID), 10) {
				return stopWaiting(fmt.Errorf("alice has uid %s on the target, the cluster's is %d", out, who.UID))
			}
			return nil
		}), "enroll and provision")
		var servers []struct {
			Name    string `json:"name"`
			Project string `json:"project"`
		}
		ls := e.admin(t, "servers", "ls", "--json").stdout
		fatalIf(t, json.Unmarshal([]byte(ls), &servers), "servers ls --json: "+ls)
		if !slices.ContainsFunc(servers, func(s struct {
			Name    string `json:"name"`
			Project string `json:"project"`
		}) bool {
			return s.Name == "web-inst" && s.Project == "web"
		}) {
			t.Errorf("servers ls does not list web-inst in web: %s", ls)
		}
		// The running agent is the unit's command line.
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", tg.agentPid()))
		fatalIf(t, err)
		if got := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "); got != installedBin+" --config "+installedConfig {
			t.Errorf("the agent runs as %q", got)
		}

		// Run again (an upgrade): the configuration is kept, the enrolled
		// server stores no token, the running agent is restarted.
		oldPid, logOffset := tg.agentPid(), len(tg.shimLog("agent.log"))
		fatalIf(t, os.WriteFile(tg.Path(operatorToken), []byte(e.enrollToken(t)+"\n"), 0o600))
		fatalIf(t, os.Remove(filepath.Join(tg.shim, "systemctl.log")))
		code, out = tg.install(t, e.node, caFile, "--token-file", operatorToken)
		if code != 0 || !strings.Contains(out, "keeping the configuration") || !strings.Contains(out, "already enrolled") {
			t.Fatalf("install.sh again exited %d; want 0, the configuration kept and the token not stored", code)
		}
		if got := tg.shimLog("systemctl.log"); got != "daemon-reload\nis-active --quiet rampart-agent\nenable --now rampart-agent\nrestart rampart-agent\n" {
			t.Errorf("systemctl calls on a re-run: %q", got)
		}
		if _, err := os.Stat(filepath.Join(tg.varLib, "rampart-agent", "enrollment.token")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a token was stored for an enrolled server (%v)", err)
		}
		if tg.agentPid() == oldPid {
			t.Error("the agent was not restarted")
		}
		fatalIf(t, waitFor(waitLong, func() error {
			if err := tg.agentAlive(); err != nil {
				return err
			}
			if !strings.Contains(tg.shimLog("agent.log")[logOffset:], `msg=applied`) {
				return errors.New("the restarted agent has not applied the state yet")
			}
			return nil
		}), "the restarted agent")
	})

	t.Run("ok/golden-image-marker", func(t *testing.T) {
		tg := newInstallTarget(t, "web-gold")
		fatalIf(t, tg.Start())
		fatalIf(t, os.MkdirAll(tg.Path("/etc/rampart"), 0o755))
		fatalIf(t, os.WriteFile(tg.Path(api.DisableAutostartFile), nil, 0o644))
		fatalIf(t, os.WriteFile(tg.Path(operatorToken), []byte(e.enrollToken(t)+"\n"), 0o600))
		code, out := tg.install(t, e.node, caFile, "--token-file", operatorToken, "--name", "web-gold", "--addr", tg.IP())
		if code != 0 || !strings.Contains(out, "not started") {
			t.Fatalf("install.sh exited %d; want 0 and a word that the agent was not started", code)
		}
		if got := tg.shimLog("systemctl.log"); got != "daemon-reload\nenable rampart-agent\n" {
			t.Errorf("systemctl calls %q; want daemon-reload and enable without --now", got)
		}
		if tg.agentPid() != 0 {
			t.Error("an agent was started")
		}
		if fileSHA256(t, filepath.Join(tg.usrLocal, "bin", "rampart-agent")) != fileSHA256(t, agentBin) {
			t.Error("the binary is not installed")
		}
		for path, mode := range map[string]os.FileMode{filepath.Join(tg.varLib, "rampart-agent"): 0o700 | os.ModeDir, filepath.Join(tg.varLib, "rampart-agent", "enrollment.token"): 0o600} {
			if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
				t.Errorf("%s: %v, mode %v; want %v", path, err, fi.Mode(), mode)
			}
		}

		// The binary itself refuses to run while the marker exists.
		cmd, err := tg.Command(context.Background(), installedBin, "--config", installedConfig)
		fatalIf(t, err)
		runOut, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(runOut), "not starting: "+api.DisableAutostartFile+" exists") {
			t.Fatalf("%s with the marker: %v (want exit 0)\n%s", installedBin, err, runOut)
		}
		if _, err := os.Stat(filepath.Join(tg.varLib, "rampart-agent", "identity.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the agent enrolled despite the marker (%v)", err)
		}

		// First boot of a clone: the marker goes, the unit starts.
		fatalIf(t, os.Remove(tg.Path(api.DisableAutostartFile)))
		start, err := tg.Command(context.Background(), "systemctl", "enable", "--now", "rampart-agent")
		fatalIf(t, err)
		start.Env = append(start.Env, "PATH="+tg.shim+":"+targetPath)
		if out, err := start.CombinedOutput(); err != nil {
			t.Fatalf("systemctl enable --now: %v\n%s", err, out)
		}
		fatalIf(t, waitFor(waitLong, func() error {
			if err := tg.agentAlive(); err != nil {
				return err
			}
			_, err := os.Stat(filepath.Join(tg.varLib, "rampart-agent", "identity.json"))
			return err
		}), "enrollment after the marker is gone")
	})

	t.Run("bad-tokens", func(t *testing.T) {
		tg := newInstallTarget(t, "web-bad")
		pinned, err := api.ParseToken(e.enrollToken(t))
		fatalIf(t, err)
		sum := sha256.Sum256([]byte("not the cluster CA " + randomHex(t)))
		pinned.CAPin = "sha256:" + hex.EncodeToString(sum[:])
		for _, tc := range []struct {
			name, token, want string
		}{
			{"fail/wrong-ca-pin", pinned.String(), "the cluster CA does not match the pin in the token"},
			{"fail/malformed-token", "rpt1_not-a-token!", "the token is malformed"},
			{"fail/join-token", e.node.c.JoinToken(), "this is not an enrollment token"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := os.Remove(filepath.Join(tg.shim, "curl.log")); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				fatalIf(t, os.WriteFile(tg.Path(operatorToken), []byte(tc.token+"\n"), 0o600))
				code, out := tg.install(t, e.node, caFile, "--token-file", operatorToken, "--name", "web-bad", "--addr", tg.IP())
				if code != 1 || !strings.Contains(out, tc.want) || (tc.name == "fail/wrong-ca-pin" && !strings.Contains(out, "Nothing was installed")) {
					t.Fatalf("install.sh exited %d; want 1 saying %q", code, tc.want)
				}
				if strings.Contains(tg.shimLog("curl.log"), "/v1/agents/binary") {
					t.Errorf("the agent binary was downloaded:\n%s", tg.shimLog("curl.log"))
				}
				for _, p := range []string{filepath.Join(tg.usrLocal, "bin", "rampart-agent"), filepath.Join(tg.varLib, "rampart-agent"),
					tg.Path(installedUnit), tg.Path(installedConfig)} {
					if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s exists after a refused install (%v)", p, err)
					}
				}
			})
		}
		// Nothing was enabled or started.
		if tg.shimLog("systemctl.log") != "" {
			t.Errorf("systemctl was called: %s", tg.shimLog("systemctl.log"))
		}
	})
}
