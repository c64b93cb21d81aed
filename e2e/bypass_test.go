package e2e

// No way around the bastion: a person who reached a server through the jump
// plants a key in ~/.ssh/authorized_keys, and the direct login with it is
// refused (the agent's sshd settings give managed accounts certificates
// only), while an account the agent did not create keeps its keys; a
// project that allows personal keys turns that off; the greeting lists
// only servers the jump would dial; revoking the binding of a person's key
// ends the sessions opened with it and closes the connections that signed in
// with it (an admin shell, a ControlMaster). The real agent runs in
// the target.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// directSSH logs in to the target with key alone, without the bastion.
func directSSH(t testing.TB, key, user, ip string, command ...string) sshResult {
	t.Helper()
	argv := []string{"ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "PreferredAuthentications=publickey,password,keyboard-interactive", "-o", "ConnectTimeout=10", user + "@" + ip}
	return runSSH(t, append(argv, command...))
}

// fingerprint is the SHA256 fingerprint of the public key of key.
func fingerprint(t testing.TB, key string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub").Output()
	fatalIf(t, err, "ssh-keygen -l")
	f := strings.Fields(string(out))
	if len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -l: %q", out)
	}
	return f[1]
}

func TestNoWayAroundTheBastion(t *testing.T) {
	start := time.Now()
	e := setupAgentNodeOn(t, "bypass")
	tg := newAgentTarget(t, e.node, "web-1", newIP(t, "web-1"), e.enrollToken(t))
	// ops is the target's own break-glass account, not the agent's.
	for _, argv := range [][]string{{"useradd", "-m", "-s", "/bin/bash", "ops"}, {"usermod", "-p", "*", "ops"}} {
		out, err := tg.Exec(context.Background(), argv...)
		fatalIf(t, err, strings.Join(argv, " ")+": "+out)
	}
	opsKey := newSSHKey(t, e.dir, "ops")
	plantFor(t, tg, "ops", opsKey)
	fatalIf(t, tg.Start(), "start web-1")
	ag := startAgent(t, tg)
	ag.waitApplied(t, "the agent's first apply", func() error {
		for _, f := range []string{agentDropIn, agentAlicePrin} {
			if _, err := os.Stat(tg.Path(f)); err != nil {
				return err
			}
		}
		return nil
	})
	// The jump waits for the agent's report before it dials.
	r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "id -un")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
		t.Fatalf("ssh -J … alice@web-1 id -un: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("dev node, agent, first jump: %s", time.Since(start).Round(time.Millisecond))

	// Through the jump, alice adds a key of her own to authorized_keys.
	planted := newSSHKey(t, e.dir, "planted")
	pub, err := os.ReadFile(planted + ".pub")
	fatalIf(t, err)
	r = e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1",
		fmt.Sprintf("mkdir -p ~/.ssh && chmod 700 ~/.ssh && echo '%s' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys", strings.TrimSpace(string(pub))))
	if r.code != 0 {
		t.Fatalf("planting the key through the jump: exit %d; stderr:\n%s", r.code, r.stderr)
	}

	t.Run("fail/planted-key-direct", func(t *testing.T) {
		r := directSSH(t, planted, "alice", tg.IP(), "id -un")
		if r.code == 0 {
			t.Fatalf("the planted key logged in as alice without the bastion: %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "Permission denied (publickey)") {
			t.Errorf("want a refusal offering publickey only; stderr:\n%s", r.stderr)
		}
	})
	t.Run("ok/unmanaged-account-keeps-its-key", func(t *testing.T) {
		r := directSSH(t, opsKey, "ops", tg.IP(), "id -un")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "ops" {
			t.Fatalf("ops with its own key: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("ok/sshd-T-managed-and-unmanaged", func(t *testing.T) {
		effective := func(user string) map[string]string {
			out, err := tg.Exec(context.Background(), "/usr/sbin/sshd", "-T", "-f", targetSSHDConfig, "-C", "user="+user+",host=client.example,addr=192.0.2.7")
			fatalIf(t, err, "sshd -T -C user="+user)
			m := map[string]string{}
			for _, l := range strings.Split(out, "\n") {
				k, v, _ := strings.Cut(l, " ")
				m[k] = v
			}
			return m
		}
		alice, ops := effective("alice"), effective("ops")
		for k, want := range map[string]string{"authorizedkeysfile": "none", "authorizedkeyscommand": "none", "passwordauthentication": "no",
			"kbdinteractiveauthentication": "no", "authenticationmethods": "publickey"} {
			if alice[k] != want {
				t.Errorf("sshd -T -C user=alice: %s %q, want %q", k, alice[k], want)
			}
		}
		if ops["authorizedkeysfile"] != ".ssh/authorized_keys .ssh/authorized_keys2" || ops["authenticationmethods"] != "any" {
			t.Errorf("sshd -T -C user=ops: authorizedkeysfile %q, authenticationmethods %q: the unmanaged account changed",
				ops["authorizedkeysfile"], ops["authenticationmethods"])
		}
		// The harness's lines after the Include still apply to alice.
		if alice["x11forwarding"] != "no" || alice["printmotd"] != "no" {
			t.Errorf("sshd -T -C user=alice: x11forwarding %q, printmotd %q: the agent's Match swallowed sshd_config", alice["x11forwarding"], alice["printmotd"])
		}
	})

	t.Run("ok/personal-keys-allowed-then-refused-again", func(t *testing.T) {
		changed := time.Now()
		e.setProject(t, api.ProjectSettings{AllowPersonalKeys: true})
		ag.waitApplied(t, "personal keys allowed", func() error {
			if r := directSSH(t, planted, "alice", tg.IP(), "id -un"); r.code != 0 {
				return fmt.Errorf("planted key with personal keys allowed: exit %d: %s", r.code, r.stderr)
			}
			return nil
		})
		t.Logf("personal keys worked %s after the project allowed them", time.Since(changed).Round(time.Millisecond))
		changed = time.Now()
		e.setProject(t, api.ProjectSettings{})
		// sshd refuses connections while it re-executes on the reload: the
		// planted key's refusal counts only from an sshd that lets ops in.
		fatalIf(t, waitFor(waitLong, func() error {
			if r := directSSH(t, opsKey, "ops", tg.IP(), "id -un"); r.code != 0 {
				return fmt.Errorf("ops with its own key: exit %d: %s", r.code, r.stderr)
			}
			if r := directSSH(t, planted, "alice", tg.IP(), "id -un"); r.code == 0 {
				return fmt.Errorf("planted key still logs in after the project refused personal keys")
			}
			return nil
		}), "personal keys refused again")
		t.Logf("personal keys refused again %s after the change", time.Since(changed).Round(time.Millisecond))
	})

	// The greeting lists what the jump would dial, nothing else. Servers at
	// addresses the jump refuses cannot be registered any more (the target
	// rule refuses them at registration too); the greeting's own filter, for
	// rows recorded before that, is tested in frontdoor
	// (TestGreetingListsOnlyReachableServers).
	t.Run("ok/greeting-lists-only-reachable-servers", func(t *testing.T) {
		hostKey := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(tg.HostKey())))
		for name, addr := range map[string]string{"metadata": "169.254.169.254", "the-bastion": e.node.IP} {
			_, err := e.api().PutServer(context.Background(), name, &api.Server{Project: "web", Name: name, Addr: addr, HostKeys: []string{hostKey}})
			if err == nil || !strings.Contains(err.Error(), "not allowed") {
				t.Errorf("PUT /v1/servers/%s at %s: %v, want the target rule's refusal", name, addr, err)
			}
		}
		r := runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + e.node.IP, "whoami", "--json"})
		var who struct{ Servers []struct{ Name string } }
		fatalIf(t, json.Unmarshal([]byte(r.stdout), &who), "whoami --json: "+r.stdout+r.stderr)
		var names []string
		for _, s := range who.Servers {
			names = append(names, s.Name)
		}
		if strings.Join(names, ",") != "web-1" {
			t.Errorf("the greeting lists %v, want web-1 only", names)
		}
	})

	// Last: alice's own binding goes.
	t.Run("ok/bindings-revoke-ends-live-session", func(t *testing.T) {
		s := startRunningSSH(t, e.jumpArgv(e.config, "alice", nil, "alice@web-1", "echo started; sleep 300"))
		fp := fingerprint(t, e.key)
		fatalIf(t, waitFor(waitLong, func() error {
			out := e.admin(t, "sessions", "ls", "--active", "--user", "alice", "--json").stdout
			var live []struct{ ID, Binding string }
			if err := json.Unmarshal([]byte(out), &live); err != nil {
				return stopWaiting(fmt.Errorf("sessions ls --json: %w: %q", err, out))
			}
			if len(live) != 1 {
				return fmt.Errorf("active sessions of alice: %s", out)
			}
			if live[0].Binding != fp {
				t.Errorf("the session records key %q, not alice's %s", live[0].Binding, fp)
			}
			return nil
		}), "the live session's record")
		// A connection to the bastion kept open (ControlMaster) that ssh -W
		// reuses for each hop.
		master := startControlMaster(t, e.config, "alice@"+e.node.IP)
		overMaster := func() sshResult {
			return runSSH(t, []string{"ssh", "-F", e.config, "-o", "BatchMode=yes", "-o", "ProxyCommand=ssh -F " + e.config +
				" -o BatchMode=yes -o ControlMaster=no -o ControlPath=" + master.path + " -W %h:%p alice@" + e.node.IP, "alice@web-1", "id -un"})
		}
		if r := overMaster(); r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
			t.Fatalf("a hop over the control master: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		// A live admin shell signed in with the same key.
		// Its standard input stays open (a file, so no goroutine copies it).
		shellIn, keepOpen, err := os.Pipe()
		fatalIf(t, err)
		t.Cleanup(func() { shellIn.Close(); keepOpen.Close() })
		shell := startRunningSSHUntil(t, []string{"ssh", "-F", e.config, "-tt", "-o", "BatchMode=yes", "admin@" + e.node.IP},
			"Signed in as alice", shellIn)
		// The revocation is made with another key of alice's: its own
		// connection keeps running.
		_, otherConfig := e.signInAs(t, "alice-other", "alice")
		revoked := time.Now()
		r := runSSH(t, []string{"ssh", "-F", otherConfig, "-T", "-o", "BatchMode=yes", "admin@" + e.node.IP, "bindings", "revoke", fp})
		if r.code != 0 || !strings.Contains(r.stdout, "revoked") {
			t.Fatalf("bindings revoke: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		s.waitEnded(t, "bindings revoke", revoked)
		if !strings.Contains(s.stderr.String(), "sign-in of your key was revoked") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
		// The admin shell ends with its connection, and says why.
		shell.waitEnded(t, "bindings revoke", revoked)
		if !strings.Contains(shell.stderr.String(), "your key's sign-in was revoked; sign in again") {
			t.Errorf("the admin shell was not told why: stdout %q, stderr %q", shell.stdout.String(), shell.stderr.String())
		}
		// The kept-open connection (ControlMaster) is closed too: nothing
		// more rides on it.
		select {
		case <-master.done:
			t.Logf("the control master exited %s after the revocation", time.Since(revoked).Round(time.Millisecond))
		case <-time.After(waitLong):
			t.Fatalf("the control master outlived the revocation by %s; its stderr: %q", waitLong, master.stderr.String())
		}
		if r := overMaster(); r.code == 0 {
			t.Errorf("a hop over the control master after the revocation ran: %q", r.stdout)
		}
		// The key is unbound: the key alone no longer signs alice in.
		r = runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "alice@" + e.node.IP, "whoami"})
		if r.code == 0 {
			t.Errorf("the revoked key still signs in: %q", r.stdout)
		}
		// alice's other key was not revoked, and its connections live on.
		events := runSSH(t, []string{"ssh", "-F", otherConfig, "-T", "-o", "BatchMode=yes", "admin@" + e.node.IP, "audit", "ls", "--type", "login.revoke", "--json"})
		if events.code != 0 || !strings.Contains(events.stdout, fp) {
			t.Errorf("audit ls --type login.revoked: exit %d, %q; stderr %q", events.code, events.stdout, events.stderr)
		}
	})
}

// controlMaster is an ssh -N connection to the bastion that other ssh
// processes reuse through its control socket.
type controlMaster struct {
	path   string
	stderr syncBuffer
	// done is closed when the process has exited.
	done chan struct{}
}

// startControlMaster connects to dest with ControlMaster=yes and waits
// until its control socket answers. The process is killed in t.Cleanup.
func startControlMaster(t *testing.T, config, dest string) *controlMaster {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "rampart-cm-") // a socket path has room for ~107 bytes
	fatalIf(t, err)
	m := &controlMaster{path: filepath.Join(dir, "cm")}
	cmd := exec.Command("ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ControlMaster=yes", "-o", "ControlPath="+m.path, "-N", dest)
	cmd.Env = clientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = &m.stderr
	fatalIf(t, cmd.Start(), "ssh -N (control master)")
	done := make(chan struct{})
	m.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done; os.RemoveAll(dir) })
	fatalIf(t, waitFor(waitLong, func() error {
		select {
		case <-done:
			return stopWaiting(fmt.Errorf("the control master exited: %q", m.stderr.String()))
		default:
		}
		if r := runSSH(t, []string{"ssh", "-F", config, "-o", "ControlPath=" + m.path, "-O", "check", dest}); r.code != 0 {
			return fmt.Errorf("ssh -O check: %s", r.stderr)
		}
		return nil
	}), "the control master")
	return m
}

// plantFor writes key's public half into user's authorized_keys inside tg.
func plantFor(t testing.TB, tg *Target, user, key string) {
	t.Helper()
	pub, err := os.ReadFile(key + ".pub")
	fatalIf(t, err)
	ctx := context.Background()
	for _, argv := range [][]string{
		{"install", "-d", "-m", "700", "-o", user, "-g", user, "/home/" + user + "/.ssh"},
		{"sh", "-c", "printf '%s\\n' \"$1\" > /home/" + user + "/.ssh/authorized_keys && chown " + user + ": /home/" + user + "/.ssh/authorized_keys && chmod 600 /home/" + user + "/.ssh/authorized_keys", "sh", strings.TrimSpace(string(pub))},
	} {
		out, err := tg.Exec(ctx, argv...)
		fatalIf(t, err, strings.Join(argv, " ")+": "+out)
	}
}
