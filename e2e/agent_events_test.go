package e2e

// The login events test: the real agent, provisioning a real sshd target,
// tails sshd's log and reports each login to the cluster's audit log, once
// and in order, through an outage of the cluster, agent restarts and a
// lost acknowledgement. The agent reaches the cluster only through a TCP
// proxy of the test's, which can cut it off while the bastion stays up for
// logins. The proxy listens on a port of its own on the node's address;
// direct (refused) logins come from an address of their own.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// apiProxy forwards TCP connections to the node's HTTPS API. Down, it cuts
// every connection and closes new ones at once: to the agent the cluster is
// unreachable, while the bastion keeps serving logins.
type apiProxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	down   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// startAPIProxy listens on ip; it forwards once SetTarget names the node.
func startAPIProxy(t *testing.T, ip string) *apiProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	fatalIf(t, err, "proxy listen")
	p := &apiProxy{ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.SetDown(true)
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *apiProxy) Addr() string { return p.ln.Addr().String() }

// SetTarget names the address connections are forwarded to.
func (p *apiProxy) SetTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

func (p *apiProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *apiProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, requestTimeout)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
		up.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// SetDown cuts the agent off (true) or lets it through again (false).
func (p *apiProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// auditEntry is an event as `audit ls --json` prints it.
type auditEntry struct {
	Seq    uint64            `json:"seq"`
	Type   string            `json:"type"`
	Actor  string            `json:"actor"`
	Fields map[string]string `json:"fields"`
}

// auditOf lists the audit events of a type (or under it) as alice sees them
// in the admin shell.
func auditOf(t testing.TB, e *policyEnv, typ string) []auditEntry {
	t.Helper()
	out := e.admin(t, "audit", "ls", "--type", typ, "--limit", "0", "--json").stdout
	var events []auditEntry
	fatalIf(t, json.Unmarshal([]byte(out), &events), "audit ls --json: "+out)
	return events
}

// waitAgentLog waits until a line of the agent's log matches re.
func waitAgentLog(t testing.TB, ag *runningAgent, re *regexp.Regexp) {
	t.Helper()
	fatalIf(t, waitFor(waitLong, func() error {
		if re.Match(mustRead(t, ag.log)) {
			return nil
		}
		if err := ag.alive(); err != nil {
			return err
		}
		return fmt.Errorf("the agent has not logged %q", re)
	}))
}

// stopAgent ends the agent as systemd does (SIGTERM) and waits for it.
func stopAgent(t testing.TB, ag *runningAgent) {
	t.Helper()
	fatalIf(t, ag.cmd.Process.Signal(syscall.SIGTERM), "stop the agent")
	select {
	case <-ag.done:
	case <-time.After(waitStop):
		t.Fatalf("the agent did not stop within %s of SIGTERM", waitStop)
	}
	if code := ag.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the agent exited %d on SIGTERM; log:\n%s", code, lastLines(ag.log, logTailLines))
	}
}

// untrustedCert makes a key and a certificate for alice from a CA the
// target does not trust, with keyID and serial.
func untrustedCert(t testing.TB, dir, keyID string, serial uint64) string {
	t.Helper()
	key := newSSHKey(t, dir, "mallory")
	pub, _, _, _, err := gossh.ParseAuthorizedKey(mustRead(t, key+".pub"))
	fatalIf(t, err)
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	ca, err := gossh.NewSignerFromKey(caKey)
	fatalIf(t, err)
	cert := &gossh.Certificate{Key: pub, Serial: serial, CertType: gossh.UserCert, KeyId: keyID, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
	fatalIf(t, cert.SignCert(rand.Reader, ca))
	fatalIf(t, os.WriteFile(key+"-cert.pub", gossh.MarshalAuthorizedKey(cert), 0o644))
	return key
}

// refusedLogin tries alice@target directly from the address from with the
// untrusted certificate; sshd must refuse it.
func refusedLogin(t testing.TB, key, from, target string) {
	t.Helper()
	r := runSSH(t, []string{"ssh", "-F", "/dev/null", "-b", from, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
		"alice@" + target, "true"})
	if r.code != 255 || !strings.Contains(r.stderr, "Permission denied") {
		t.Fatalf("direct login with an untrusted certificate: exit %d, want 255 and Permission denied; stderr:\n%s", r.code, r.stderr)
	}
}

// sshdAccepted lists the certificate logins sshd accepted: source, key id
// and serial, in the log's order.
func sshdAccepted(tg *Target) [][]string {
	re := regexp.MustCompile(`(?m)^Accepted publickey for alice from (\S+) port (\d+) ssh2: ED25519-CERT \S+ ID (.*) \(serial (\d+)\) CA `)
	var out [][]string
	for _, m := range re.FindAllStringSubmatch(strings.ReplaceAll(tg.Log(), "\r", ""), -1) {
		out = append(out, m[1:])
	}
	return out
}

func TestAgentLoginEvents(t *testing.T) {
	start := time.Now()
	// The agent knows the cluster only through the proxy: the token's
	// addresses, its configuration and the API address the node advertises
	// (which agents follow) name nothing else.
	nodeIP, clientIP := newIP(t, "events node"), newIP(t, "direct logins")
	proxy := startAPIProxy(t, nodeIP)
	node := StartDevNodeWith(t, "events", nodeIP, "advertise:\n  api: "+proxy.Addr()+"\n")
	proxy.SetTarget(node.APIAddr())
	e := signedInEnv(t, node)
	e.setProject(t, api.ProjectSettings{})
	e.admin(t, "projects", "grant", "web", "engineering")
	t.Logf("dev node, alice bound, project web granted: %s", time.Since(start).Round(time.Millisecond))

	tok, err := api.ParseToken(e.enrollToken(t))
	fatalIf(t, err, "token")
	tok.Addrs = []string{proxy.Addr()}
	tg := newAgentTarget(t, e.node, "web-1", newIP(t, "web-1"), tok.String())
	cfg := strings.Replace(string(mustRead(t, tg.Path(agentConfig))), e.node.APIAddr(), proxy.Addr(), 1)
	// sshd's log as the harness keeps it (sshd -e: no times, no pids).
	cfg += "login_log: " + tg.LogPath() + "\n"
	fatalIf(t, os.WriteFile(tg.Path(agentConfig), []byte(cfg), 0o600))
	fatalIf(t, tg.Start(), "start web-1")
	ag := startAgent(t, tg)
	ag.waitApplied(t, "the agent provisions web-1", func() error {
		if _, err := os.Stat(tg.Path(agentAlicePrin)); err != nil {
			return fmt.Errorf("alice's principals file: %w", err)
		}
		return nil
	})
	waitAgentLog(t, ag, regexp.MustCompile(`msg="reporting logins"`))

	login := func(what string) {
		t.Helper()
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "true")
		if r.code != 0 {
			t.Fatalf("%s: ssh -J alice@node alice@web-1: exit %d; stderr:\n%s", what, r.code, r.stderr)
		}
	}
	mallory := untrustedCert(t, t.TempDir(), "mallory's own CA", 4242)
	spooled := func(ag *runningAgent, seq int) {
		t.Helper()
		waitAgentLog(t, ag, regexp.MustCompile(`msg=login seq=`+strconv.Itoa(seq)+` `))
	}

	// 1, 2: delivered at once.
	login("first login")
	refusedLogin(t, mallory, clientIP, tg.IP())
	fatalIf(t, waitFor(waitLong, func() error {
		if n := len(auditOf(t, e, "sshd_login")); n != 2 {
			return fmt.Errorf("%d sshd_login events in the audit log, want 2", n)
		}
		return nil
	}), "the first logins reach the audit log")
	t.Logf("first logins in the audit log after %s", time.Since(start).Round(time.Millisecond))

	// 3, 4: the cluster is unreachable; the logins wait in the spool.
	proxy.SetDown(true)
	login("login during the outage")
	refusedLogin(t, mallory, clientIP, tg.IP())
	spooled(ag, 4)

	// 5, 6: logged while the agent is stopped; the restarted agent finds
	// them from its saved log position (and still has 3 and 4).
	stopAgent(t, ag)
	login("login while the agent is stopped")
	refusedLogin(t, mallory, clientIP, tg.IP())
	ag = startAgent(t, tg)
	spooled(ag, 6)
	waitAgentLog(t, ag, regexp.MustCompile(`msg="login events waiting in the spool" pending=2 first_seq=3`))

	// 7: the node itself goes down (the bastion too: only a direct login),
	// and comes back over its data.
	_, err = e.node.Stop(waitStop)
	fatalIf(t, err, "stop the node")
	refusedLogin(t, mallory, clientIP, tg.IP())
	spooled(ag, 7)
	fatalIf(t, e.node.Start("--dev", "--config", e.node.ConfigPath), "restart the node")
	fatalIf(t, e.node.waitSignInReady(waitLong), "restarted node")
	if n := len(auditOf(t, e, "sshd_login")); n != 2 {
		t.Fatalf("%d sshd_login events in the audit log while the agent was cut off, want 2", n)
	}

	// A lost acknowledgement: the cluster records 3-7, the agent's spool is
	// put back as it was before (as if the agent died before it took the
	// answer in), and it sends them again.
	stopAgent(t, ag)
	spoolFile := tg.Path(agentDataDir + "/events/events.db")
	before := mustRead(t, spoolFile)
	proxy.SetDown(false)
	ag = startAgent(t, tg)
	waitAgentLog(t, ag, regexp.MustCompile(`msg="login events delivered" first_seq=3 last_seq=7 accepted=5 duplicates=0`))
	stopAgent(t, ag)
	fatalIf(t, os.WriteFile(spoolFile, before, 0o600), "put the spool back")
	ag = startAgent(t, tg)
	waitAgentLog(t, ag, regexp.MustCompile(`msg="login events delivered" first_seq=3 last_seq=7 accepted=0 duplicates=5`))

	// The audit log: each login once, in the order sshd logged them.
	events := auditOf(t, e, "sshd_login")
	var got []string
	for _, ev := range events {
		got = append(got, ev.Fields["agent_seq"]+" "+ev.Type)
	}
	want := []string{"1 sshd_login.accept", "2 sshd_login.fail", "3 sshd_login.accept", "4 sshd_login.fail", "5 sshd_login.accept", "6 sshd_login.fail", "7 sshd_login.fail"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("sshd_login events in the audit log: %s\nwant: %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	accepted := sshdAccepted(tg)
	if len(accepted) != 3 {
		t.Fatalf("sshd logged %d accepted certificate logins, want 3:\n%s", len(accepted), tg.Log())
	}
	// The session.open of each session names the certificate the node
	// minted for it: the target's login event is tied to it by serial and
	// key id, not only by the session id inside the key id.
	sessions := map[string]map[string]string{}
	for _, s := range auditOf(t, e, "session.open") {
		if s.Fields["server"] == "web-1" {
			sessions[s.Fields["session"]] = s.Fields
		}
	}
	var acceptedSeen int
	for _, ev := range events {
		f := ev.Fields
		if f["server"] != "web-1" || f["server_id"] == "" || f["project"] != "web" || f["user"] != "alice" {
			t.Errorf("event %s: server %q (%q), project %q, user %q", f["agent_seq"], f["server"], f["server_id"], f["project"], f["user"])
		}
		switch ev.Type {
		case "sshd_login.accept":
			// What sshd logged for this login, and what the bastion minted.
			a := accepted[acceptedSeen]
			acceptedSeen++
			if f["source"] != nodeIP || f["source"] != a[0] || f["port"] != a[1] || f["key_id"] != a[2] || f["serial"] != a[3] {
				t.Errorf("login %s: source %s:%s key id %q serial %s; sshd logged %s:%s %q %s", f["agent_seq"], f["source"], f["port"], f["key_id"], f["serial"], a[0], a[1], a[2], a[3])
			}
			if !strings.HasPrefix(f["key_id"], "rampart user="+ev.Actor+" session="+f["session"]+" server=web-1 ") || ev.Actor == "" {
				t.Errorf("login %s: actor %q session %q do not match key id %q", f["agent_seq"], ev.Actor, f["session"], f["key_id"])
			}
			if open := sessions[f["session"]]; open == nil {
				t.Errorf("login %s: session %q has no session.open on web-1 in the audit log", f["agent_seq"], f["session"])
			} else if open["serial"] != f["serial"] || open["key_id"] != f["key_id"] {
				t.Errorf("login %s: sshd saw certificate %s %q; session.open of %s names %s %q", f["agent_seq"], f["serial"], f["key_id"], f["session"], open["serial"], open["key_id"])
			}
		case "sshd_login.fail":
			if f["source"] != clientIP || f["key_id"] != "mallory's own CA" || f["serial"] != "4242" ||
				f["key_type"] != "ED25519-CERT" || !strings.Contains(f["reason"], "connection closed during authentication") || ev.Actor != "" {
				t.Errorf("refused login %s: actor %q fields %v", f["agent_seq"], ev.Actor, f)
			}
		}
	}
	if out := e.admin(t, "audit", "verify").stdout; !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify: %s", out)
	}
	t.Logf("7 login events recorded once each, in order, in %s", time.Since(start).Round(time.Millisecond))
}
