package e2e

// The jump's policies with real parts: the OpenSSH client through a dev node
// to Debian's sshd (and, for the certificate, an SSH server of the test's
// own), each on an address of its own. What jump_test.go covers
// (exec, exit codes, scp/sftp, -L, the -R refusal, destination and login
// refusals, a revoked grant) is not repeated here; this file covers -R when
// allowed, agent forwarding both ways, idle timeout and maximum session
// duration, the per-hop certificate as minted and as a real sshd treats it,
// and live sessions ended by an administrator or by disabling the person.

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// setupPolicyJump starts a dev node, binds alice's key through the dev
// IdP, creates project "web" (default settings) granted to engineering, and
// starts web-1: sshd (UsePAM yes) trusting web's user CA, pinned by its key.
func setupPolicyJump(t *testing.T) *policyEnv {
	t.Helper()
	return setupPolicyJumpOn(t, StartDevNode(t, "jump-policy", newIP(t, "jump-policy node")))
}

// setupPolicyJumpOn is setupPolicyJump with a node of the caller's.
func setupPolicyJumpOn(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := grantedEnv(t, node)
	e.target = e.startTarget(t, "web-1", newIP(t, "web-1"), "web", e.userCA(t, "web"), true, nil)
	return e
}

// jumpArgv is ssh -F config -J person@node extra dest command.
func (e *policyEnv) jumpArgv(config, person string, extra []string, dest string, command ...string) []string {
	args := append([]string{"ssh", "-F", config, "-J", person + "@" + net.JoinHostPort(e.node.IP, portSSH)}, extra...)
	return append(append(args, dest), command...)
}

func TestJumpPolicy(t *testing.T) {
	e := setupPolicyJump(t)

	// -R through the bastion when the project allows it: a program on the
	// target connects to the forwarded port, reads the banner this test
	// serves on its side, and answers; both directions must arrive.
	t.Run("ok/remote-forward-allowed", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{AllowRemoteForward: true})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		fatalIf(t, err)
		defer ln.Close()
		token := randomHex(t)
		answers := make(chan string, 4)
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					_ = conn.SetDeadline(time.Now().Add(sshTimeout))
					fmt.Fprintf(conn, "banner-%s\n", token)
					if line, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
						answers <- strings.TrimSpace(line)
					}
				}()
			}
		}()
		rport := freePort(t, "127.0.0.1")
		// The forward and the session are separate requests, relayed
		// concurrently: the target retries until the port listens.
		script := fmt.Sprintf(`for i in $(seq 100); do exec 3<>/dev/tcp/127.0.0.1/%d && break; sleep 0.1; done 2>/dev/null
read -r line <&3; echo "got:$line"; echo "pong:$line" >&3; exec 3>&-`, rport)
		fwd := fmt.Sprintf("127.0.0.1:%d:%s", rport, ln.Addr())
		r := e.ssh(t, []string{"-o", "ExitOnForwardFailure=yes", "-R", fwd}, "alice@web-1", script)
		if r.code != 0 || !strings.Contains(r.stdout, "got:banner-"+token) {
			t.Fatalf("-R %s: exit %d, stdout %q; stderr:\n%s", fwd, r.code, r.stdout, r.stderr)
		}
		select {
		case got := <-answers:
			if got != "pong:banner-"+token {
				t.Fatalf("the target answered %q through -R, want pong:banner-%s", got, token)
			}
		case <-time.After(waitLong):
			t.Fatal("no answer from the target through -R")
		}
	})

	// Agent forwarding: ssh forwards a running agent holding a key of its
	// own. Forbidden, the target's session has no agent at all (the proxy
	// drops auth-agent-req and the certificate lacks permit-agent-forwarding);
	// allowed, ssh-add -l on the target lists the key, through the node.
	t.Run("agent-forwarding", func(t *testing.T) {
		sock, fingerprint := startSSHAgent(t)
		script := `echo "sock=${SSH_AUTH_SOCK:-none}"; ssh-add -l; echo "rc=$?"`
		for _, tc := range []struct {
			name  string
			allow bool
		}{{"fail/project-forbids", false}, {"ok/project-allows", true}} {
			t.Run(tc.name, func(t *testing.T) {
				e.setProject(t, api.ProjectSettings{AllowAgentForward: tc.allow})
				// The config's IdentityAgent none would unset SSH_AUTH_SOCK,
				// and ssh 9.2 drops -A (even ForwardAgent=path) without it: name
				// the agent on the command line, whose values come first.
				r := e.ssh(t, []string{"-v", "-A", "-o", "IdentityAgent=" + sock}, "alice@web-1", script)
				if r.code != 0 || !strings.Contains(r.stderr, "Requesting authentication agent forwarding") {
					t.Fatalf("exit %d, or ssh did not ask to forward its agent; stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
				}
				listed := strings.Contains(r.stdout, fingerprint) && strings.Contains(r.stdout, "rc=0")
				switch {
				case tc.allow && !listed:
					t.Fatalf("agent forwarding allowed, but the target does not list %s:\n%s", fingerprint, r.stdout)
				case !tc.allow && (listed || !strings.Contains(r.stdout, "sock=none")):
					t.Fatalf("agent forwarding forbidden, but the target has an agent:\n%s", r.stdout)
				}
			})
		}
	})

	// Idle timeout and maximum session duration from the project's
	// settings. Idle means no data either way; a session printing every
	// 0.3 s is busy and outlives the idle timeout until the maximum
	// duration ends it. Durations are logged, not asserted.
	t.Run("limits", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{IdleTimeout: "2s", MaxSessionDuration: "6s"})
		t.Run("ok/idle-interactive-session-ends", func(t *testing.T) {
			term := startTerminal(t, t.TempDir(), e.jumpArgv(e.config, "alice", []string{"-t"}, "alice@web-1"))
			term.WaitScreen(waitLong, "a shell prompt on web-1", func(screen string) error {
				if m := exitMarker.FindStringSubmatch(screen); m != nil {
					return stopWaiting(fmt.Errorf("ssh exited %s before a prompt", m[1]))
				}
				if !strings.Contains(screen, "alice@") && !strings.Contains(screen, "$") {
					return errors.New("no prompt yet")
				}
				return nil
			})
			prompted := time.Now()
			screen, code := waitExit(t, term)
			t.Logf("idle session ended %s after its prompt (idle timeout 2s)", time.Since(prompted).Round(time.Millisecond))
			if code == 0 || !strings.Contains(screen, "session ended: idle timeout") || strings.Contains(screen, "maximum session duration") {
				t.Fatalf("exit %d; want the session ended for idleness:\n%s", code, screen)
			}
		})
		t.Run("ok/busy-session-ends-at-max-duration", func(t *testing.T) {
			start := time.Now()
			r := e.ssh(t, nil, "alice@web-1", "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.3; done")
			t.Logf("busy session ended after %s with %d ticks (maximum 6s)", time.Since(start).Round(time.Millisecond), strings.Count(r.stdout, "tick-"))
			if r.code == 0 || !strings.Contains(r.stderr, "session ended: maximum session duration") || strings.Contains(r.stderr, "idle timeout") {
				t.Fatalf("exit %d; want the session ended at its maximum duration; stderr:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "tick-3\n") {
				t.Fatalf("the session printed nothing before it ended: %q", r.stdout)
			}
		})
	})

	t.Run("certificate", func(t *testing.T) { testMintedCertificate(t, e) })
	t.Run("live-revocation", func(t *testing.T) { testLiveRevocation(t, e) })
	t.Run("ok/stalled-client-does-not-hold-up-revocation", func(t *testing.T) { testStalledClient(t, e) })
}

// testMintedCertificate captures the per-hop certificate the node presents
// and checks it field by field; then shows with a real sshd that the
// restrictions it carries (source-address, lifetime) are enforced, and that
// a certificate of project web opens nothing that trusts another project.
func testMintedCertificate(t *testing.T, e *policyEnv) {
	captureIP := newIP(t, "capture-1")
	capture := startCertCapture(t, captureIP)
	putServer(t, e.api(), "capture-1", api.Server{Project: "web", Name: "capture-1", Addr: captureIP,
		HostKeys: []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(capture.hostKey)))}})
	webCA := parseAuthorizedKey(t, e.userCA(t, "web").Keys[0])

	var minted []*gossh.Certificate
	for _, tc := range []struct {
		name     string
		settings api.ProjectSettings
		ttl      time.Duration
		ext      []string
	}{
		// 30s is the shortest cert_ttl a project may set.
		{"ok/min-ttl-no-forwarding", api.ProjectSettings{CertTTL: "30s"}, 30 * time.Second, []string{"permit-pty"}},
		{"ok/default-ttl-forwarding-allowed", api.ProjectSettings{AllowLocalForward: true, AllowAgentForward: true}, 3 * time.Minute,
			[]string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.setProject(t, tc.settings)
			n := capture.count()
			before := time.Now()
			// The capture server refuses every login once it has the certificate.
			r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@capture-1", "true")
			after := time.Now()
			if r.code == 0 || !strings.Contains(r.stderr, `capture-1 refused the login "alice"`) {
				t.Fatalf("exit %d, want the capture server's refusal; stderr:\n%s", r.code, r.stderr)
			}
			got := capture.since(n)
			if len(got) == 0 {
				t.Fatal("the node presented no certificate")
			}
			c := got[0]
			cert := c.cert
			t.Logf("minted: key id %q, serial %d, principals %v, options %v, extensions %v, valid %s..%s",
				cert.KeyId, cert.Serial, cert.ValidPrincipals, cert.CriticalOptions, slices.Sorted(maps.Keys(cert.Extensions)),
				time.Unix(int64(cert.ValidAfter), 0).Format(time.TimeOnly), time.Unix(int64(cert.ValidBefore), 0).Format(time.TimeOnly))
			checks := []struct {
				ok   bool
				what string
			}{
				{c.user == "alice", fmt.Sprintf("login %q, want alice", c.user)},
				{cert.CertType == gossh.UserCert, "not a user certificate"},
				{slices.Equal(cert.ValidPrincipals, []string{"alice"}), fmt.Sprintf("principals %v, want [alice]", cert.ValidPrincipals)},
				// The node dialled from its egress address, and the certificate
				// is good from there only.
				{c.remote.IP.String() == e.node.IP, fmt.Sprintf("dialled from %s, want %s", c.remote.IP, e.node.IP)},
				{maps.Equal(cert.CriticalOptions, map[string]string{"source-address": e.node.IP + "/32"}),
					fmt.Sprintf("critical options %v, want only source-address %s/32", cert.CriticalOptions, e.node.IP)},
				{regexp.MustCompile(`^rampart user=alice session=s-[0-9a-f]+ server=capture-1 project=web$`).MatchString(cert.KeyId),
					fmt.Sprintf("key id %q does not name user, session, server and project", cert.KeyId)},
				{slices.Equal(slices.Sorted(maps.Keys(cert.Extensions)), tc.ext), fmt.Sprintf("extensions %v, want %v (never X11 or user-rc)",
					slices.Sorted(maps.Keys(cert.Extensions)), tc.ext)},
				{cert.Serial != 0, "serial 0"},
				{bytesEqual(cert.SignatureKey, webCA), "not signed by project web's user CA"},
				// Valid from a minute back (skew) for the project's TTL from
				// the moment of minting, which lies between before and after.
				{inWindow(cert.ValidBefore, before.Add(tc.ttl), after.Add(tc.ttl)), fmt.Sprintf("ends %s, want mint time + %s", unixTime(cert.ValidBefore), tc.ttl)},
				{inWindow(cert.ValidAfter, before.Add(-time.Minute), after.Add(-time.Minute)), fmt.Sprintf("starts %s, want mint time - 1m", unixTime(cert.ValidAfter))},
			}
			for _, ch := range checks {
				if !ch.ok {
					t.Error(ch.what)
				}
			}
			// The signature verifies, as a target checks it.
			checker := &gossh.CertChecker{
				IsUserAuthority:          func(k gossh.PublicKey) bool { return bytesEqual(k, webCA) },
				SupportedCriticalOptions: []string{"source-address"},
			}
			if err := checker.CheckCert("alice", cert); err != nil {
				t.Errorf("CheckCert: %v", err)
			}
			minted = append(minted, cert)
		})
	}

	t.Run("ok/fresh-key-and-serial-per-hop", func(t *testing.T) {
		if len(minted) < 2 {
			t.Skip("needs both certificates above")
		}
		if bytesEqual(minted[0].Key, minted[1].Key) || minted[0].Serial == minted[1].Serial {
			t.Fatalf("two hops share a key (%v) or a serial (%d, %d)", bytesEqual(minted[0].Key, minted[1].Key), minted[0].Serial, minted[1].Serial)
		}
	})

	// The node's per-hop key never leaves it, so the captured certificate
	// cannot itself be replayed. What a real sshd does with its restrictions
	// is shown with a replica: every field of the minted certificate
	// (principal, key ID, serial, source-address, extensions, lifetime) on a
	// key and under a CA that the test holds, trusted by web-1 for the
	// duration. Used from the node's address it logs in, which shows the
	// replica is otherwise good; from another 127.0.0.N, or after its
	// lifetime, sshd refuses it.
	t.Run("restrictions-enforced-by-sshd", func(t *testing.T) {
		if len(minted) == 0 {
			t.Skip("needs the 30s certificate above")
		}
		dir := t.TempDir()
		key := newSSHKey(t, dir, "replica")
		pub := parseAuthorizedKey(t, string(mustRead(t, key+".pub")))
		_, caPriv, err := ed25519.GenerateKey(rand.Reader)
		fatalIf(t, err)
		testCA, err := gossh.NewSignerFromKey(caPriv)
		fatalIf(t, err)
		fatalIf(t, e.target.TrustCA(webCA, testCA.PublicKey()))
		t.Cleanup(func() {
			if err := e.target.TrustCA(webCA); err != nil {
				t.Errorf("restore web-1's trust: %v", err)
			}
		})
		kh := filepath.Join(dir, "known_hosts")
		fatalIf(t, os.WriteFile(kh, []byte(e.target.IP()+" "+string(gossh.MarshalAuthorizedKey(e.target.HostKey()))), 0o600))

		for _, tc := range []struct {
			name, from string
			endsIn     time.Duration
			refusal    *regexp.Regexp
		}{
			{"ok/from-the-node-address", e.node.IP, 30 * time.Second, nil},
			{"fail/from-another-address", captureIP, 30 * time.Second,
				regexp.MustCompile(`with valid certificate but not from a permitted source address \(` + regexp.QuoteMeta(captureIP) + `\)`)},
			{"fail/after-expiry", e.node.IP, -5 * time.Second, regexp.MustCompile(`Certificate invalid: expired`)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cert := replicaCert(t, minted[0], pub, testCA, time.Now().Add(tc.endsIn))
				certFile := filepath.Join(dir, "replica-cert.pub")
				fatalIf(t, os.WriteFile(certFile, gossh.MarshalAuthorizedKey(cert), 0o600))
				offset := e.target.LogOffset()
				r := runSSH(t, []string{"ssh", "-F", "/dev/null", "-i", key, "-o", "CertificateFile=" + certFile,
					"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BindAddress=" + tc.from,
					"-o", "UserKnownHostsFile=" + kh, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
					"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "alice@" + e.target.IP(), "id -un"})
				if tc.refusal == nil {
					if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
						t.Fatalf("replica from %s: exit %d, %q; stderr:\n%s", tc.from, r.code, r.stdout, r.stderr)
					}
					return
				}
				if r.code != 255 || !strings.Contains(r.stderr, "Permission denied") {
					t.Fatalf("replica from %s ending %s: exit %d, want a refusal; stderr:\n%s", tc.from, unixTime(cert.ValidBefore), r.code, r.stderr)
				}
				if _, err := e.target.WaitLogFrom(offset, waitLong, tc.refusal); err != nil {
					t.Fatalf("sshd did not log why: %v", err)
				}
			})
		}
	})

	// A certificate of project web opens nothing that trusts another
	// project: web-1 stays registered in web (so the node mints with web's
	// CA) while its sshd trusts only project ops's CA. The real sshd refuses
	// the node's real certificate; trusting web's CA again lets it in.
	t.Run("fail/certificate-of-another-project", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{})
		writeProject(t, e.api(), "ops", api.Project{Description: "another project"})
		opsCA := parseAuthorizedKey(t, e.userCA(t, "ops").Keys[0])
		if bytesEqual(opsCA, webCA) {
			t.Fatal("projects web and ops share a user CA")
		}
		fatalIf(t, e.target.TrustCA(opsCA))
		restored := false
		t.Cleanup(func() {
			if !restored {
				_ = e.target.TrustCA(webCA)
			}
		})
		offset := e.target.LogOffset()
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "true")
		if r.code == 0 || !strings.Contains(r.stderr, `web-1 refused the login "alice"`) {
			t.Fatalf("web's certificate at an sshd trusting only ops's CA: exit %d; stderr:\n%s", r.code, r.stderr)
		}
		re := regexp.MustCompile(`Failed publickey for alice from ` + regexp.QuoteMeta(e.node.IP) + ` .*ID rampart user=alice session=\S+ server=web-1 project=web .*CA ED25519 ` +
			regexp.QuoteMeta(gossh.FingerprintSHA256(webCA)))
		if _, err := e.target.WaitLogFrom(offset, waitLong, re); err != nil {
			t.Fatalf("sshd did not log the refused web certificate: %v", err)
		}
		fatalIf(t, e.target.TrustCA(webCA))
		restored = true
		if r := e.ssh(t, nil, "alice@web-1", "true"); r.code != 0 {
			t.Fatalf("web-1 trusting web's CA again: exit %d; stderr:\n%s", r.code, r.stderr)
		}
	})
}

// testLiveRevocation ends live sessions from the admin shell: sessions kill,
// and users disable (bob's session, alice as the administrator).
func testLiveRevocation(t *testing.T, e *policyEnv) {
	e.setProject(t, api.ProjectSettings{})

	t.Run("ok/admin-kills-session", func(t *testing.T) {
		s := startRunningSSH(t, e.jumpArgv(e.config, "alice", nil, "alice@web-1", "echo started; sleep 300"))
		ids := e.activeSessionIDs(t)
		if len(ids) == 0 {
			t.Fatal("sessions ls --active shows no session of alice on web-1")
		}
		id := ids[len(ids)-1] // oldest first: the last is ours
		killed := time.Now()
		e.admin(t, "sessions", "kill", id, "--yes")
		s.waitEnded(t, "sessions kill", killed)
		if !strings.Contains(s.stderr.String(), "an administrator ended this session") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
		var show struct{ Status string }
		r := e.admin(t, "sessions", "show", id, "--json")
		fatalIf(t, json.Unmarshal([]byte(r.stdout), &show), "sessions show --json: "+r.stdout)
		if show.Status != "closed" {
			t.Errorf("session %s is %q after the kill, want closed", id, show.Status)
		}
	})

	t.Run("ok/stricter-project-policy", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{AllowLocalForward: true})
		s := startRunningSSH(t, e.jumpArgv(e.config, "alice", nil, "alice@web-1", "echo started; sleep 300"))
		changed := time.Now()
		e.setProject(t, api.ProjectSettings{})
		s.waitEnded(t, "turning local forwarding off", changed)
		if !strings.Contains(s.stderr.String(), "the policy of project web changed") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
	})

	t.Run("ok/server-moved-to-another-project", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{})
		s := startRunningSSH(t, e.jumpArgv(e.config, "alice", nil, "alice@web-1", "echo started; sleep 300"))
		srv := api.Server{Project: "web", Name: "web-1", Addr: e.target.IP(),
			HostKeys: []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(e.target.HostKey())))}}
		writeProject(t, e.api(), "elsewhere", api.Project{Description: "not granted to alice"})
		moved := srv
		moved.Project = "elsewhere"
		started := time.Now()
		putServer(t, e.api(), "web-1", moved)
		t.Cleanup(func() { putServer(t, e.api(), "web-1", srv) })
		s.waitEnded(t, "moving web-1 to project elsewhere", started)
		if !strings.Contains(s.stderr.String(), "your access to project elsewhere was revoked") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
	})

	t.Run("ok/person-disabled-mid-session", func(t *testing.T) {
		_, bobConfig := e.signIn(t, "bob")
		fatalIf(t, e.target.AddUser("bob"), "add bob to web-1")
		s := startRunningSSH(t, e.jumpArgv(bobConfig, "bob", nil, "bob@web-1", "echo started; sleep 300"))
		disabled := time.Now()
		e.admin(t, "users", "disable", "bob")
		s.waitEnded(t, "users disable bob", disabled)
		if !strings.Contains(s.stderr.String(), "your account was disabled") {
			t.Errorf("bob was not told why: %q", s.stderr.String())
		}
		// And his bound key opens nothing any more.
		r := runSSH(t, e.jumpArgv(bobConfig, "bob", []string{"-o", "BatchMode=yes"}, "bob@web-1", "true"))
		if r.code == 0 || !strings.Contains(r.stderr, "your account is disabled") {
			t.Fatalf("bob after being disabled: exit %d; stderr:\n%s", r.code, r.stderr)
		}
	})
}

// certCapture is an SSH server that records the certificates clients offer
// and refuses every login.
type certCapture struct {
	hostKey gossh.PublicKey
	mu      sync.Mutex
	seen    []capturedCert
}

type capturedCert struct {
	cert   *gossh.Certificate
	user   string
	remote *net.TCPAddr
}

// startCertCapture serves on ip:22 until t ends.
func startCertCapture(t *testing.T, ip string) *certCapture {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	host, err := gossh.NewSignerFromKey(priv)
	fatalIf(t, err)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "22"))
	fatalIf(t, err)
	cc := &certCapture{hostKey: host.PublicKey()}
	cfg := &gossh.ServerConfig{
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if cert, ok := key.(*gossh.Certificate); ok {
				remote, _ := meta.RemoteAddr().(*net.TCPAddr)
				cc.mu.Lock()
				cc.seen = append(cc.seen, capturedCert{cert: cert, user: meta.User(), remote: remote})
				cc.mu.Unlock()
			}
			return nil, errors.New("certificate captured; login refused")
		},
		ServerVersion: "SSH-2.0-RampartE2ECertCapture",
	}
	cfg.AddHostKey(host)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(sshTimeout))
				if sc, _, _, err := gossh.NewServerConn(conn, cfg); err == nil {
					sc.Close()
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return cc
}

func (cc *certCapture) count() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.seen)
}

// since returns the certificates captured after the first n.
func (cc *certCapture) since(n int) []capturedCert {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return slices.Clone(cc.seen[n:])
}

// replicaCert copies every field of minted that a target checks onto pub,
// signed by ca, with the same lifetime ending at validBefore.
func replicaCert(t testing.TB, minted *gossh.Certificate, pub gossh.PublicKey, ca gossh.Signer, validBefore time.Time) *gossh.Certificate {
	t.Helper()
	end := uint64(validBefore.Unix())
	c := &gossh.Certificate{
		Key: pub, Serial: minted.Serial, CertType: minted.CertType, KeyId: minted.KeyId,
		ValidPrincipals: slices.Clone(minted.ValidPrincipals),
		ValidAfter:      end - (minted.ValidBefore - minted.ValidAfter), ValidBefore: end,
		Permissions: gossh.Permissions{CriticalOptions: maps.Clone(minted.CriticalOptions), Extensions: maps.Clone(minted.Extensions)},
	}
	fatalIf(t, c.SignCert(rand.Reader, ca), "sign the replica")
	return c
}

// startSSHAgent runs an ssh-agent holding a fresh key until t ends, and
// returns its socket and the key's SHA256 fingerprint.
func startSSHAgent(t *testing.T) (sock, fingerprint string) {
	t.Helper()
	// A unix socket's path must stay short; t.TempDir's may not.
	dir, err := os.MkdirTemp("/tmp", "rampart-agent-")
	fatalIf(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	cmd.Env = clientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fatalIf(t, cmd.Start(), "ssh-agent")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	fatalIf(t, waitFor(waitLong, func() error { _, err := os.Stat(sock); return err }), "ssh-agent socket")
	key := newSSHKey(t, dir, "forwarded-agent-key")
	add := exec.Command("ssh-add", key)
	add.Env = append(clientEnv(), "SSH_AUTH_SOCK="+sock)
	out, err := add.CombinedOutput()
	fatalIf(t, err, "ssh-add: "+string(out))
	return sock, gossh.FingerprintSHA256(parseAuthorizedKey(t, string(mustRead(t, key+".pub"))))
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	fatalIf(t, err)
	return hex.EncodeToString(b)
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	fatalIf(t, err)
	return b
}

func bytesEqual(a, b gossh.PublicKey) bool { return string(a.Marshal()) == string(b.Marshal()) }

func unixTime(s uint64) string { return time.Unix(int64(s), 0).Format(time.TimeOnly) }

// inWindow: a certificate time (whole seconds) lies between lo and hi,
// allowing for the truncation to seconds.
func inWindow(s uint64, lo, hi time.Time) bool {
	v := int64(s)
	return v >= lo.Unix()-1 && v <= hi.Unix()+1
}
