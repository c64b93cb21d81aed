package e2e

// An agent follows the cluster, not its enrollment token: enrolled while the
// cluster had one node, it learns the nodes that join from its state, and
// when the node it enrolled with dies it keeps receiving changes from the
// others — a disabled person's lock above all. Three rampartd processes,
// n1 in dev mode with the dev IdP, and a target with a real agent.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// followLockBound is the bound from a person's disabling to their
// account being locked on the target.
const followLockBound = 5 * time.Second

func TestAgentFollowsCluster(t *testing.T) {
	e := startDevFirstNode(t, "follow", 3, "  poll_interval: 1s\n")
	c := e.c
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	e.alice = e.signIn(t, "alice", n1)
	e.bob = e.signIn(t, "bob", n1)
	createProject(t, n1.API(), "web", api.ProjectSettings{})
	grant(t, n1.API(), "web", "engineering")

	// Enrolled while n1 is the whole cluster: the token, and the agent's
	// configuration, name n1 alone.
	token := strings.TrimSpace(e.admin(t, n1, "tokens", "create", "web", "--uses", "1", "--quiet").stdout)
	tok, err := api.ParseToken(token)
	fatalIf(t, err, "token")
	if !slices.Equal(tok.Addrs, []string{n1.APIAddr()}) {
		t.Fatalf("the token names %v, want n1 alone", tok.Addrs)
	}
	tg, ag := startAgentTarget(t, e.devNode(n1), "web-1", newIP(t, "web-1"), token)
	ag.waitApplied(t, "the agent's first apply", func() error {
		if _, err := tg.Exec(context.Background(), "id", "-u", "bob"); err != nil {
			return fmt.Errorf("no account for bob on web-1 yet: %w", err)
		}
		return nil
	})

	for i, n := range c.Nodes[1:] {
		fatalIf(t, n.Start("--join", c.JoinToken()), "start "+n.ID)
		fatalIf(t, c.WaitMembers(waitLong, c.Nodes[:i+2]...), "join "+n.ID)
	}
	// The agent keeps the cluster's list in its data dir.
	want := []string{n1.APIAddr(), n2.APIAddr(), n3.APIAddr()}
	slices.Sort(want)
	kept := tg.Path(agentDataDir + "/cluster.json")
	ag.waitApplied(t, "the agent learns the new nodes", func() error {
		var got []string
		b, err := os.ReadFile(kept)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &got); err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("%s holds %s (%v), want %v", kept, b, err, want)
		}
		return nil
	})

	fatalIf(t, n1.Kill(), "kill n1")
	_, err = c.WaitLeader(waitLong, n2, n3)
	fatalIf(t, err, "a leader without n1")

	begun := time.Now()
	e.admin(t, n2, "users", "disable", "bob")
	disabled := time.Now()
	var locked time.Time
	err = waitFor(waitLong, func() error {
		if err := ag.alive(); err != nil {
			return err
		}
		out, err := tg.Exec(context.Background(), "getent", "shadow", "bob")
		f := strings.Split(strings.TrimSpace(out), ":")
		if err != nil || len(f) < 9 {
			return fmt.Errorf("getent shadow bob: %q, %v", out, err)
		}
		if f[7] != "1" {
			return fmt.Errorf("bob's account does not expire yet: %q", out)
		}
		locked = time.Now()
		return nil
	})
	fatalIf(t, err, "bob locked on web-1 with n1 dead")
	t.Logf("bob locked on web-1 %s after `users disable bob` on n2 returned (%s after it was typed)",
		locked.Sub(disabled).Round(time.Millisecond), locked.Sub(begun).Round(time.Millisecond))
	if d := locked.Sub(disabled); d > followLockBound {
		t.Errorf("bob was locked %s after being disabled, over the %s bound", d.Round(time.Millisecond), followLockBound)
	}
}
