package e2e

// Expiry of a just-in-time access request across a leader kill: three
// rampartd processes; alice's request is approved, her session runs through
// a follower, and the leader is killed with SIGKILL before the window ends.
// The window is part of the replicated record, so the follower ends her
// session when it passes, every surviving node refuses her next login, and
// the new leader writes the expiry.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

func TestAccessRequestExpiryAcrossLeaderKill(t *testing.T) {
	e := defineDevCluster(t, "jitkill", 3)
	e.startFirstNode(t, jitNodeConfig)
	c := e.c
	for i, n := range c.Nodes[1:] {
		fatalIf(t, n.Start("--join", c.JoinToken()), "start "+n.ID)
		fatalIf(t, c.WaitMembers(waitLong, c.Nodes[:i+2]...), "join "+n.ID)
		fatalIf(t, e.devNode(n).waitSignInReady(waitLong), n.ID+" sign-in")
	}
	n1 := c.Nodes[0]
	e.alice = e.signIn(t, "alice", n1)
	e.bob = e.signIn(t, "bob", n1)
	je := &jumpEnv{node: e.devNode(n1), dir: e.dir}
	je.setProject(t, api.ProjectSettings{})
	e.admin(t, n1, "requests", "policy", "web", "--approvers", "leads")
	e.target = je.startTarget(t, "web-1", newIP(t, "web-1"), "web", je.userCA(t, "web"), true, nil)
	_, err := c.WaitConverged(waitLong)
	fatalIf(t, err)

	leader, err := c.WaitLeader(waitLong)
	fatalIf(t, err)
	var carrier, other *Node
	for _, n := range c.Nodes {
		if n == leader {
			continue
		}
		if carrier == nil {
			carrier = n
		} else {
			other = n
		}
	}
	t.Logf("leader %s; alice's session goes through %s", leader.ID, carrier.ID)

	front := func(config, who string, node *Node, args ...string) []string {
		return append([]string{"ssh", "-F", config, "-T", "-o", "BatchMode=yes", who + "@" + node.IP}, args...)
	}
	asking := startRunningSSHUntil(t, front(e.alice, "alice", carrier, "request", "web", "--for", "25s", "--reason", "failover-drill"), "is pending", nil)
	m := reRequestID.FindStringSubmatch(asking.stdout.String())
	if m == nil {
		t.Fatalf("no request id in %q", asking.stdout.String())
	}
	id := m[1]
	if r := runSSH(t, front(e.bob, "bob", carrier, "approve", id)); r.code != 0 {
		t.Fatalf("bob approve on %s: exit %d; stderr %q", carrier.ID, r.code, r.stderr)
	}
	<-asking.done
	var req requestJSON
	fatalIf(t, json.Unmarshal([]byte(e.admin(t, carrier, "requests", "show", id, "--json").stdout), &req))
	if req.State != "approved" || req.ExpiresAt == nil {
		t.Fatalf("request after approval: %+v", req)
	}
	jump := func(node *Node, cmd string) []string {
		return []string{"ssh", "-F", e.alice, "-o", "BatchMode=yes", "-J", "alice@" + node.SSHAddr(), "alice@web-1", cmd}
	}
	s := startRunningSSH(t, jump(carrier, "echo started; sleep 300"))

	fatalIf(t, leader.Kill(), "kill the leader")
	killed := time.Now()
	if killed.After(*req.ExpiresAt) {
		t.Fatalf("the leader was killed %s after the window ended: the test machine is too slow for this window", killed.Sub(*req.ExpiresAt))
	}
	t.Logf("killed leader %s %s before the window's end", leader.ID, req.ExpiresAt.Sub(killed).Round(time.Millisecond))

	select {
	case <-s.done:
	case <-time.After(time.Until(req.ExpiresAt.Add(waitLong))):
		t.Fatalf("alice's session on %s outlived her window; stderr %q", carrier.ID, s.stderr.String())
	}
	late := s.ended.Sub(*req.ExpiresAt)
	t.Logf("timing: the session on %s ended %s after the window's end", carrier.ID, late.Round(time.Millisecond))
	if late < -time.Second || late > 3*time.Second {
		t.Errorf("the session ended %s after the window's end, want within 2 s", late)
	}
	if want := "your access request " + id + " expired"; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("alice was not told why: %q", s.stderr.String())
	}
	for _, n := range []*Node{carrier, other} {
		if r := runSSH(t, jump(n, "true")); r.code == 0 || !strings.Contains(r.stderr, "no access to web-1 (project web)") {
			t.Errorf("alice on %s after the window: exit %d; stderr:\n%s", n.ID, r.code, r.stderr)
		}
	}
	_, err = c.WaitLeader(waitLong, carrier, other)
	fatalIf(t, err, "a new leader")
	fatalIf(t, waitFor(waitLong, func() error {
		var got requestJSON
		fatalIf(t, json.Unmarshal([]byte(e.admin(t, other, "requests", "show", id, "--json").stdout), &got))
		if got.State != "expired" {
			return fmt.Errorf("request state %s on %s", got.State, other.ID)
		}
		return nil
	}), "the new leader writes the expiry")
}
