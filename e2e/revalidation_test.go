package e2e

// Re-validation with the identity provider, end to end: a dev node that
// re-validates every 5 s against its dev IdP over HTTP, a target run by its
// real agent, and people on live `ssh -J` sessions through OpenSSH. An
// administrator changes a person in the IdP (its users page, over HTTP); the
// node learns it at the next re-validation alone: no SCIM, no admin command.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/devidp"
)

// revalidateEvery is the e2e's oidc.revalidate_interval (below the 30 s
// minimum, which dev: true lifts).
const revalidateEvery = 5 * time.Second

// revalidationYAML follows the dev_idp block of the node's config: three dev
// users, and re-validation every 5 s.
const revalidationYAML = `  users:
    - {username: alice, password: alice, email: alice@example.com, groups: [engineering, rampart-admins]}
    - {username: bob, password: bob, email: bob@example.com, groups: [engineering]}
    - {username: carol, password: carol, email: carol@example.com, groups: [engineering]}
oidc:
  revalidate_interval: 5s
`

// revalidationBound is how soon after a change in the IdP a session must
// end: the next re-validation of the person (at most one interval away),
// then the revocation's 2 s, with a little slack for the machine.
const revalidationBound = revalidateEvery + 4*time.Second

func TestRevalidationDeprovisions(t *testing.T) {
	checkHostUnchanged(t, hostEtcDigest)
	node := StartDevNodeWith(t, "reval", newIP(t, "reval node"), revalidationYAML)
	e := signedInEnv(t, node)
	e.setProject(t, api.ProjectSettings{})
	grant(t, e.api(), "web", "engineering")
	_, bobConfig := e.signIn(t, "bob")
	_, carolConfig := e.signIn(t, "carol")

	tg, ag := startAgentTarget(t, node, "web-1", newIP(t, "web-1"), e.enrollToken(t))
	ag.waitApplied(t, "bob and carol can reach web-1", func() error {
		for _, p := range []struct{ name, config string }{{"bob", bobConfig}, {"carol", carolConfig}} {
			if r := runSSH(t, e.jumpArgv(p.config, p.name, []string{"-o", "BatchMode=yes"}, p.name+"@web-1", "true")); r.code != 0 {
				return fmt.Errorf("%s: exit %d: %s", p.name, r.code, r.stderr)
			}
		}
		return nil
	})
	idp := devidp.NewBrowser()
	idpCtx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		t.Cleanup(cancel)
		return ctx
	}

	// carol leaves engineering in the IdP: the grant it gave goes, and with
	// it her session; she is still a person Rampart knows.
	t.Run("ok/group-removed-in-idp", func(t *testing.T) {
		s := startRunningSSH(t, e.jumpArgv(carolConfig, "carol", nil, "carol@web-1", "echo started; sleep 300"))
		changed := time.Now()
		fatalIf(t, idp.ChangeUser(idpCtx(t), node.IdPURL, "carol", devidp.ActionSetGroups, "contractors"), "remove carol from engineering")
		s.waitEnded(t, "carol's engineering removed in the IdP", changed)
		if d := s.ended.Sub(changed); d > revalidationBound {
			t.Errorf("carol's session ended %s after the IdP change, over the %s bound", d.Round(time.Millisecond), revalidationBound)
		}
		if !strings.Contains(s.stderr.String(), "your access to project web was revoked") {
			t.Errorf("carol was not told why: %q", s.stderr.String())
		}
		var who struct {
			Groups []string `json:"groups"`
		}
		r := runSSH(t, []string{"ssh", "-F", carolConfig, "-T", "-o", "BatchMode=yes", "carol@" + node.IP, "whoami", "--json"})
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &who) != nil || !slices.Equal(who.Groups, []string{"contractors"}) {
			t.Fatalf("carol's bound key after the group change: exit %d, %q, %q; want her signed in with groups [contractors]", r.code, r.stdout, r.stderr)
		}
		if r := runSSH(t, e.jumpArgv(carolConfig, "carol", []string{"-o", "BatchMode=yes"}, "carol@web-1", "true")); r.code == 0 {
			t.Fatal("carol still reaches web-1 without engineering")
		}
	})

	// bob is deactivated in the IdP: it refuses his refresh token, and the
	// next re-validation revokes his bindings, ends his session and has the
	// agent lock his account.
	t.Run("ok/deactivated-in-idp", func(t *testing.T) {
		s := startRunningSSH(t, e.jumpArgv(bobConfig, "bob", nil, "bob@web-1", "echo started; sleep 300"))
		deactivated := time.Now()
		fatalIf(t, idp.ChangeUser(idpCtx(t), node.IdPURL, "bob", devidp.ActionDeactivate), "deactivate bob")
		s.waitEnded(t, "bob's deactivation in the IdP", deactivated)
		if d := s.ended.Sub(deactivated); d > revalidationBound {
			t.Errorf("bob's session ended %s after the deactivation, over the %s bound", d.Round(time.Millisecond), revalidationBound)
		}
		if msg := s.stderr.String(); !strings.Contains(msg, "your account was disabled") && !strings.Contains(msg, "the sign-in of your key was revoked") {
			t.Errorf("bob was not told why: %q", msg)
		}
		var locked time.Time
		ag.waitApplied(t, "bob locked on web-1", func() error {
			out, err := tg.Exec(context.Background(), "getent", "shadow", "bob")
			f := strings.Split(strings.TrimSpace(out), ":")
			if err != nil || len(f) < 9 {
				return fmt.Errorf("getent shadow bob: %q, %v", out, err)
			}
			if !strings.HasPrefix(f[1], "!") || f[7] != "1" {
				return fmt.Errorf("bob is not locked and expired yet: %q", out)
			}
			if _, err := os.Stat(tg.Path("/etc/ssh/rampart_principals/bob")); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("bob's principals file is still there (%v)", err)
			}
			locked = time.Now()
			return nil
		})
		t.Logf("bob: session ended %s, account locked %s after the IdP deactivation",
			s.ended.Sub(deactivated).Round(time.Millisecond), locked.Sub(deactivated).Round(time.Millisecond))
		if d := locked.Sub(deactivated); d > revalidationBound+5*time.Second {
			t.Errorf("bob was locked %s after the deactivation, over the %s bound", d.Round(time.Millisecond), revalidationBound+5*time.Second)
		}

		// The key opens nothing: its binding is gone.
		if r := runSSH(t, []string{"ssh", "-F", bobConfig, "-T", "-o", "BatchMode=yes", "bob@" + node.IP, "whoami"}); r.code == 0 {
			t.Fatalf("bob's key after the deactivation: exit 0, %q", r.stdout)
		}
		var show struct {
			Status   string `json:"status"`
			Bindings int    `json:"bindings"`
		}
		out := e.admin(t, "users", "show", "bob", "--json").stdout
		fatalIf(t, json.Unmarshal([]byte(out), &show), "users show bob --json: "+out)
		if show.Status != "disabled" || show.Bindings != 0 {
			t.Errorf("users show bob: %s", out)
		}
		var events []struct {
			Actor  string            `json:"actor"`
			Fields map[string]string `json:"fields"`
		}
		out = e.admin(t, "audit", "ls", "--type", "user.deactivate", "--json").stdout
		fatalIf(t, json.Unmarshal([]byte(out), &events), "audit ls --json: "+out)
		if len(events) != 1 || events[0].Actor != "idp:revalidation" || events[0].Fields["user"] != "bob" ||
			!strings.Contains(events[0].Fields["reason"], "invalid_grant") {
			t.Errorf("audit of the deactivation: %s", out)
		}
		// Alice, whom the IdP still vouches for, is untouched.
		if r := runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + node.IP, "whoami"}); r.code != 0 {
			t.Errorf("alice after bob's deactivation: exit %d, %s", r.code, r.stderr)
		}
	})
}
