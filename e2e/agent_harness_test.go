package e2e

// The agent harness: the real rampart-agent run inside a target's mount
// namespace, so that it sees the target's own /etc. A test makes a token in
// the admin shell (enrollToken), prepares a target for the agent
// (newAgentTarget), starts its sshd and the agent (startAgentTarget), and
// waits until the agent has applied what the test needs (waitApplied).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Paths of the agent inside a target. Everything the agent keeps is under
// /etc/rampart-agent, which is private to the target (its /var/lib is this
// machine's).
const (
	agentEtc       = "/etc/rampart-agent"
	agentConfig    = agentEtc + "/agent.yaml"
	agentTokenFile = agentEtc + "/enrollment.token"
	agentDataDir   = agentEtc + "/data"
	agentSudoers   = "/etc/sudoers.d/rampart-nginx-reload"
	agentDropIn    = "/etc/ssh/sshd_config.d/00-rampart.conf"
	agentCAKeys    = "/etc/ssh/rampart_user_ca_keys"
	agentAlicePrin = "/etc/ssh/rampart_principals/alice"
)

// writeAgentFiles writes the agent's configuration (writeAgentConfig,
// enrolling with node's cluster) and the token into the target.
func writeAgentFiles(t testing.TB, tg *Target, node *DevNode, token string) {
	t.Helper()
	writeAgentConfig(t, tg, tg.Name(), tg.IP(), tg.Port(), fmt.Sprintf("cluster: [%q]\n", node.APIAddr()))
	fatalIf(t, os.WriteFile(tg.Path(agentTokenFile), []byte(token+"\n"), 0o600))
}

// writeAgentConfig writes the agent's configuration and a fresh machine id
// (the copied /etc/machine-id is this machine's) into the target, replacing
// whatever an earlier agent left there. The configuration is settings
// (YAML lines: the cluster, how to enroll), then what every test's agent
// has: its files under agentEtc, the server's name, addr and port, a 5 s
// poll, and debug logs.
func writeAgentConfig(t testing.TB, tg *Target, name, addr string, port int, settings string) {
	t.Helper()
	dir := tg.Path(agentEtc)
	fatalIf(t, os.RemoveAll(dir))
	fatalIf(t, os.Mkdir(dir, 0o700))
	cfg := settings + fmt.Sprintf(`token_file: %s
data_dir: %s
name: %s
addr: %s
ssh_port: %d
machine_id_file: %s/machine-id
state_file: %s/managed.json
home_archive_dir: %s/home-archive
poll_wait: 5s
delete_grace: 1h
log_level: debug
`, agentTokenFile, agentDataDir, name, addr, port, agentEtc, agentEtc, agentEtc)
	fatalIf(t, os.WriteFile(tg.Path(agentConfig), []byte(cfg), 0o600))
	fatalIf(t, os.WriteFile(tg.Path(agentEtc+"/machine-id"), []byte(randomHex(t)+randomHex(t)+"\n"), 0o444))
}

// agentCommand is rampart-agent inside the target, with its output in a
// file of the test's.
func agentCommand(ctx context.Context, t testing.TB, tg *Target) (*exec.Cmd, string) {
	t.Helper()
	bin, err := binary("rampart-agent")
	fatalIf(t, err)
	cmd, err := tg.Command(ctx, bin, "--config", agentConfig)
	fatalIf(t, err)
	logPath := filepath.Join(t.TempDir(), "agent-"+tg.Name()+".log")
	f, err := os.Create(logPath)
	fatalIf(t, err)
	t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	return cmd, logPath
}

// runningAgent is a long-running agent.
type runningAgent struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startAgent starts the agent in the target; it is killed in t.Cleanup, and
// its log printed if the test failed.
func startAgent(t testing.TB, tg *Target) *runningAgent {
	t.Helper()
	cmd, logPath := agentCommand(context.Background(), t, tg)
	fatalIf(t, cmd.Start(), "start rampart-agent")
	a := &runningAgent{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("==== rampart-agent on %s (%s):\n%s", tg.Name(), cmd.ProcessState, lastLines(logPath, 2*logTailLines))
		}
	})
	return a
}

// alive fails a wait at once when the agent has exited.
func (a *runningAgent) alive() error {
	select {
	case <-a.done:
		return stopWaiting(fmt.Errorf("rampart-agent exited (%s); log:\n%s", a.cmd.ProcessState, lastLines(a.log, logTailLines)))
	default:
		return nil
	}
}

// enrollToken is a one-use enrollment token of project web, made in the
// admin shell (tokens create --quiet).
func (e *policyEnv) enrollToken(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(e.admin(t, "tokens", "create", "web", "--uses", "1", "--quiet").stdout)
}

// newAgentTarget prepares target name on ip (UsePAM yes, an ed25519 host
// key) with the agent's files and token (writeAgentFiles); neither sshd nor
// the agent is started.
func newAgentTarget(t testing.TB, node *DevNode, name, ip, token string) *Target {
	t.Helper()
	tg := NewTarget(t, TargetConfig{Name: name, IP: ip, UsePAM: true, HostKeyTypes: []string{"ed25519"}})
	writeAgentFiles(t, tg, node, token)
	return tg
}

// startAgentTarget is newAgentTarget with its sshd and its agent started.
func startAgentTarget(t testing.TB, node *DevNode, name, ip, token string) (*Target, *runningAgent) {
	t.Helper()
	tg := newAgentTarget(t, node, name, ip, token)
	fatalIf(t, tg.Start(), "start "+name)
	return tg, startAgent(t, tg)
}

// waitApplied waits until applied holds, ending the test at once if the
// agent exits; what names the wait in the failure.
func (a *runningAgent) waitApplied(t testing.TB, what string, applied func() error) {
	t.Helper()
	fatalIf(t, waitFor(waitLong, func() error {
		if err := a.alive(); err != nil {
			return err
		}
		return applied()
	}), what)
}

// hasAccount is a condition for waitApplied: user has an account on tg.
func hasAccount(tg *Target, user string) func() error {
	return func() error {
		_, err := tg.Exec(context.Background(), "id", user)
		return err
	}
}

// checkHostUnchanged fingerprints what of this machine an agent or its
// installer could touch (digest) now and again when the test ends, after
// every target is gone (call it before starting any), and fails the test
// if anything changed, went or came.
func checkHostUnchanged(t *testing.T, digest func(testing.TB) map[string]string) {
	t.Helper()
	before := digest(t)
	t.Cleanup(func() {
		after := digest(t)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("this machine's %s changed during the test: %s -> %s", k, v, after[k])
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("this machine has a new %s after the test", k)
			}
		}
	})
}
