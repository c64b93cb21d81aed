package e2e

// Just-in-time access from plain ssh, with the real OpenSSH client, a dev
// node, and a target whose agent manages its accounts: alice has no grant
// to project web; the jump tells her how to ask; she asks with `ssh bastion
// request`, which waits; bob (an approver) approves with `ssh bastion
// approve`; her waiting command says so, her ssh -J reaches web-1 (the
// agent creates her account), the session record carries the request id,
// and when the window ends her session ends with a message and a new login
// is refused. The approvers' webhooks (generic JSON signed with HMAC, and
// Slack) are received by a test HTTP server.

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/notify"
)

// jitNodeConfig continues the dev node's dev_idp block: alice the
// administrator and engineer, bob and carol the leads who approve; the
// test's webhooks are plain http on loopback, which the node must allow.
const jitNodeConfig = `  poll_interval: 1s
  users:
    - {username: alice, password: alice, email: alice@example.com, groups: [engineering, rampart-admins]}
    - {username: bob, password: bob, email: bob@example.com, groups: [leads]}
    - {username: carol, password: carol, email: carol@example.com, groups: [leads]}
access_requests:
  allow_private_webhooks: true
`

const jitHookSecret = "a-shared-secret-of-the-test"

// jitWindow is how long alice's request lasts: long enough for her ssh -J
// to reach web-1 through the first-login wait, short enough to watch end.
const jitWindow = 20 * time.Second

// hookServer receives webhooks and checks the JSON ones' signature.
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	json    []notify.Payload
	slack   []string
	badSigs int
}

func startHookServer(t *testing.T) *hookServer {
	t.Helper()
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		switch r.URL.Path {
		case "/rampart":
			if !hmac.Equal([]byte(r.Header.Get(notify.SignatureHeader)), []byte(notify.Sign(jitHookSecret, body))) {
				h.badSigs++
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			var p notify.Payload
			if err := json.Unmarshal(body, &p); err == nil {
				h.json = append(h.json, p)
			}
		case "/services/T0/B0/slack-secret":
			var m struct{ Text string }
			if err := json.Unmarshal(body, &m); err == nil {
				h.slack = append(h.slack, m.Text)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// sawRequest reports whether both webhooks told of request id.
func (h *hookServer) sawRequest(id, approve string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	gotJSON := false
	for _, p := range h.json {
		gotJSON = gotJSON || (p.Request.ID == id && p.ApproveCommand == approve && p.Request.Reason == "incident 42")
	}
	gotSlack := false
	for _, s := range h.slack {
		gotSlack = gotSlack || (strings.Contains(s, approve) && strings.Contains(s, "incident 42"))
	}
	if !gotJSON || !gotSlack {
		return fmt.Errorf("webhooks so far: json %+v, slack %q, bad signatures %d", h.json, h.slack, h.badSigs)
	}
	return nil
}

var reRequestID = regexp.MustCompile(`Request (r-[a-z2-7]+) for project`)

type requestJSON struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func TestAccessRequest(t *testing.T) {
	hooks := startHookServer(t)
	node := StartDevNodeWith(t, "jit", newIP(t, "jit node"), jitNodeConfig)
	e := trustingEnv(t, node)
	e.key, e.config = e.signIn(t, "alice")
	_, bob := e.signInAs(t, "bob", "bob")
	self := "ssh -p " + portSSH + " " + node.IP
	if portSSH == "22" {
		self = "ssh " + node.IP
	}

	createProject(t, e.api(), "web", api.ProjectSettings{})
	createProject(t, e.api(), "db", api.ProjectSettings{})
	e.admin(t, "requests", "policy", "web", "--approvers", "leads", "--max", "1h",
		"--webhook", hooks.URL+"/rampart", "--secret", jitHookSecret, "--slack", hooks.URL+"/services/T0/B0/slack-secret")
	tg, ag := startAgentTarget(t, node, "web-1", newIP(t, "web-1"), e.enrollToken(t))
	fatalIf(t, waitFor(waitLong, func() error {
		if err := ag.alive(); err != nil {
			return stopWaiting(err)
		}
		page, err := e.api().Servers(context.Background(), client.ListOptions{})
		if err != nil {
			return err
		}
		for _, s := range page.Items {
			if s.Name == "web-1" {
				return nil
			}
		}
		return fmt.Errorf("web-1 not enrolled yet")
	}), "web-1 enrolled")

	jump := func(cmd string) []string {
		return []string{"ssh", "-F", e.config, "-o", "BatchMode=yes", "-J", "alice@" + net.JoinHostPort(node.IP, portSSH), "alice@web-1", cmd}
	}
	front := func(config, who string, args ...string) sshResult {
		return runSSH(t, append([]string{"ssh", "-F", config, "-T", "-o", "BatchMode=yes", who + "@" + node.IP}, args...))
	}
	askLine := fmt.Sprintf(`no access to web-1 (project web). Ask for it: %s request web --for 1h --reason "..."`, self)

	// 1. Refused, with the line to copy.
	r := runSSH(t, jump("true"))
	if r.code == 0 || !strings.Contains(r.stderr, askLine) {
		t.Fatalf("alice without a grant: exit %d; stderr:\n%s\nwant the line %q", r.code, r.stderr, askLine)
	}

	// Refusals of the request itself.
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"fail/no-reason", "say for how long and why", []string{"request", "web", "--for", "1h"}},
		{"fail/beyond-maximum", "longer than project web allows", []string{"request", "web", "--for", "2h", "--reason", "x"}},
		{"fail/project-takes-none", "project db does not take access requests", []string{"request", "db", "--for", "1h", "--reason", "x"}},
	} {
		if r := front(e.config, "alice", tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d; stderr %q, want %q", tc.name, r.code, r.stderr, tc.want)
		}
	}

	// 2. She asks, with a reason; the command waits.
	asking := startRunningSSHUntil(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + node.IP,
		"request", "web", "--for", jitWindow.String(), "--reason", `"incident 42"`}, "is pending", nil)
	m := reRequestID.FindStringSubmatch(asking.stdout.String())
	if m == nil {
		t.Fatalf("no request id in %q", asking.stdout.String())
	}
	id := m[1]
	fatalIf(t, waitFor(waitLong, func() error { return hooks.sawRequest(id, self+" approve "+id) }), "webhooks")

	// Nobody approves their own: not from the front door, not as an
	// administrator.
	if r := front(e.config, "alice", "approve", id); r.code == 0 || !strings.Contains(r.stderr, "your own request") {
		t.Errorf("alice approving her own request: exit %d; stderr %q", r.code, r.stderr)
	}
	if r := front(e.config, "admin", "requests", "approve", id); r.code == 0 || !strings.Contains(r.stderr, "your own request") {
		t.Errorf("alice approving her own request in the admin shell: exit %d; stderr %q", r.code, r.stderr)
	}

	// 3. bob approves from plain ssh while her command waits; it reports
	// the approval.
	approved := time.Now()
	if r := front(bob, "bob", "approve", id); r.code != 0 || !strings.Contains(r.stdout, "Approved "+id) {
		t.Fatalf("bob approve: exit %d; stdout %q; stderr %q", r.code, r.stdout, r.stderr)
	}
	select {
	case <-asking.done:
	case <-time.After(waitLong):
		t.Fatalf("alice's request command still waits after the approval: %q", asking.stdout.String())
	}
	if asking.err != nil || !strings.Contains(asking.stdout.String(), "Approved by bob") {
		t.Fatalf("alice's request command: %v; stdout %q", asking.err, asking.stdout.String())
	}
	t.Logf("timing: alice's waiting command returned %s after bob's approve started", asking.ended.Sub(approved).Round(time.Millisecond))
	var req requestJSON
	fatalIf(t, json.Unmarshal([]byte(e.admin(t, "requests", "show", id, "--json").stdout), &req))
	if req.State != "approved" || req.ExpiresAt == nil {
		t.Fatalf("request after approval: %+v", req)
	}

	// 4. Her ssh -J reaches web-1 (the agent creates her account), and the
	// session's record carries the request id.
	s := startRunningSSH(t, jump("echo started; sleep 300"))
	t.Logf("timing: alice's session started %s after the approval", time.Since(approved).Round(time.Millisecond))
	var sessions []struct {
		ID, Status string
		RequestID  string `json:"request_id"`
	}
	fatalIf(t, json.Unmarshal([]byte(e.admin(t, "sessions", "ls", "--active", "--user", "alice", "--json").stdout), &sessions))
	if len(sessions) != 1 || sessions[0].RequestID != id {
		t.Fatalf("alice's active sessions: %+v, want one under %s", sessions, id)
	}

	// 5. At expiry her session ends with the message, and a new login is
	// refused.
	select {
	case <-s.done:
	case <-time.After(time.Until(req.ExpiresAt.Add(waitLong))):
		t.Fatalf("alice's session outlived her request's window; stderr %q", s.stderr.String())
	}
	late := s.ended.Sub(*req.ExpiresAt)
	t.Logf("timing: the session ended %s after the window's end", late.Round(time.Millisecond))
	if late < -time.Second || late > 2*time.Second+time.Second {
		t.Errorf("the session ended %s after the window's end, want within 2 s", late)
	}
	if want := "your access request " + id + " expired"; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("alice was not told why: %q, want %q", s.stderr.String(), want)
	}
	if r := runSSH(t, jump("true")); r.code == 0 || !strings.Contains(r.stderr, askLine) {
		t.Errorf("alice after expiry: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	fatalIf(t, waitFor(waitLong, func() error {
		fatalIf(t, json.Unmarshal([]byte(e.admin(t, "requests", "show", id, "--json").stdout), &req))
		if req.State != "expired" {
			return fmt.Errorf("request state %s", req.State)
		}
		return nil
	}), "the leader writes the expiry")
	// The agent takes her access away on web-1: the account is expired.
	ag.waitApplied(t, "alice's account deprovisioned", func() error {
		out, err := tg.Exec(context.Background(), "getent", "shadow", "alice")
		if err != nil {
			return nil // gone altogether
		}
		if f := strings.Split(strings.TrimSpace(string(out)), ":"); len(f) > 7 && f[7] == "1" {
			return nil
		}
		return fmt.Errorf("alice's shadow entry %q", out)
	})

	// Deny with a reason: her waiting command tells her.
	t.Run("ok/deny-with-reason", func(t *testing.T) {
		asking := startRunningSSHUntil(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + node.IP,
			"request", "web", "--for", "10m", "--reason", "again"}, "is pending", nil)
		id := reRequestID.FindStringSubmatch(asking.stdout.String())[1]
		if r := front(bob, "bob", "deny", id); r.code == 0 || !strings.Contains(r.stderr, "give a reason") {
			t.Errorf("deny without a reason: exit %d; stderr %q", r.code, r.stderr)
		}
		if r := front(bob, "bob", "deny", id, "--reason", `"not during the freeze"`); r.code != 0 {
			t.Fatalf("bob deny: exit %d; stderr %q", r.code, r.stderr)
		}
		<-asking.done
		if asking.err == nil || !strings.Contains(asking.stdout.String(), "Denied by bob: not during the freeze") {
			t.Errorf("alice's command after the denial: %v; stdout %q", asking.err, asking.stdout.String())
		}
	})

	// Revocation mid-session ends the session with a message.
	t.Run("ok/revoke-mid-session", func(t *testing.T) {
		asking := startRunningSSHUntil(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + node.IP,
			"request", "web", "--for", "30m", "--reason", "hotfix"}, "is pending", nil)
		id := reRequestID.FindStringSubmatch(asking.stdout.String())[1]
		if r := front(bob, "bob", "approve", id); r.code != 0 {
			t.Fatalf("bob approve: exit %d; stderr %q", r.code, r.stderr)
		}
		<-asking.done
		s := startRunningSSH(t, jump("echo started; sleep 300"))
		start := time.Now()
		if r := front(bob, "bob", "revoke", id, "--reason", "done"); r.code != 0 {
			t.Fatalf("bob revoke: exit %d; stderr %q", r.code, r.stderr)
		}
		s.waitEnded(t, "bob's revoke", start)
		if want := "your access request " + id + " was revoked"; !strings.Contains(s.stderr.String(), want) {
			t.Errorf("alice was not told why: %q, want %q", s.stderr.String(), want)
		}
		if r := runSSH(t, jump("true")); r.code == 0 || !strings.Contains(r.stderr, askLine) {
			t.Errorf("alice after revocation: exit %d; stderr:\n%s", r.code, r.stderr)
		}
	})
}
