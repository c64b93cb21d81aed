package e2e

// Shared logins on an agent-managed target, with real parts: project web
// shares the account deploy, which exists on web-1 (made with useradd, as an
// operator would) and which the agent never creates; a person reaches
// deploy@web-1 through ssh -J, the agent having given deploy a principals
// file. A person whose IdP login is deploy is not given that account, and a
// shared login that is a person's unix name is refused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// sharedNodeUsers are the dev IdP's users for this test: alice, and a person
// whose login is deploy (continuing the dev_idp block the harness opens).
const sharedNodeUsers = `  users:
  - {username: alice, password: alice, email: alice@example.com, groups: [engineering, rampart-admins]}
  - {username: deploy, password: deploy, email: deploy@example.com, groups: [engineering]}
`

func TestSharedLoginOnManagedTarget(t *testing.T) {
	e := signedInEnv(t, StartDevNodeWith(t, "shared-login", newIP(t, "shared-login node"), sharedNodeUsers))
	e.setProject(t, api.ProjectSettings{SharedLogins: []string{"deploy"}})
	e.admin(t, "projects", "grant", "web", "engineering")

	// The IdP's deploy is a person like any other: a unix name of its own.
	_, deployConfig := e.signIn(t, "deploy")
	var who struct {
		UnixName string `json:"unix_name"`
	}
	r := runSSH(t, []string{"ssh", "-F", deployConfig, "-T", "-o", "BatchMode=yes", "deploy@" + e.node.IP, "whoami", "--json"})
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &who), "whoami --json of deploy: "+r.stdout+r.stderr)
	if who.UnixName != "deploy-2" {
		t.Fatalf("the person whose login is deploy got unix name %q; want deploy-2 (deploy is web's shared login)", who.UnixName)
	}

	// web-1 has its own deploy account; the agent is told nothing but a token.
	tg := newAgentTarget(t, e.node, "web-1", newIP(t, "web-1"), e.enrollToken(t))
	fatalIf(t, tg.Start(), "start web-1")
	out, err := tg.Exec(context.Background(), "useradd", "--create-home", "--shell", "/bin/sh", "deploy")
	fatalIf(t, err, "useradd deploy: "+out)
	sshdOffset := tg.LogOffset()
	ag := startAgent(t, tg)
	listening := regexp.MustCompile(`Server listening on ` + regexp.QuoteMeta(tg.IP()) + ` port 22\.`)
	ag.waitApplied(t, "agent applied web's shared login", func() error {
		b, err := os.ReadFile(tg.Path("/etc/ssh/rampart_principals/deploy"))
		if err != nil || string(b) != "deploy\n" {
			return fmt.Errorf("deploy's principals file: %q, %v", b, err)
		}
		if _, err := os.Stat(tg.Path(agentDropIn)); err != nil {
			return err
		}
		lines, err := readLinesFrom(tg.LogPath(), sshdOffset)
		if err != nil || !slices.ContainsFunc(lines, listening.MatchString) {
			return fmt.Errorf("sshd has not listened again since the agent started (%v)", err)
		}
		return nil
	})

	t.Run("ok/person-reaches-shared-account", func(t *testing.T) {
		r := runSSH(t, e.jumpArgv(e.config, "alice", nil, "deploy@web-1", "id", "-un", ";", "echo", "$HOME"))
		if r.code != 0 || r.stdout != "deploy\n/home/deploy\n" {
			t.Fatalf("ssh -J alice@node deploy@web-1: exit %d, stdout %q, want deploy and /home/deploy\nstderr:\n%s\nsshd:\n%s", r.code, r.stdout, r.stderr, tg.Log())
		}
		for _, l := range managedAccounts(t, tg) {
			if strings.HasPrefix(l, "deploy:") {
				t.Fatalf("the agent manages the shared account: %s", l)
			}
		}
	})
	t.Run("ok/person-named-deploy-reaches-own-account", func(t *testing.T) {
		r := runSSH(t, e.jumpArgv(deployConfig, "deploy", nil, "deploy-2@web-1", "id", "-un"))
		if r.code != 0 || r.stdout != "deploy-2\n" {
			t.Fatalf("ssh -J deploy@node deploy-2@web-1: exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("fail/shared-login-that-is-a-person", func(t *testing.T) {
		for _, name := range []string{"alice", "deploy-2"} {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err := e.api().PutProject(ctx, "web", &api.Project{Description: "web servers",
				Settings: api.ProjectSettings{SharedLogins: []string{"deploy", name}}})
			cancel()
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "shared login "+name) {
				t.Fatalf("PUT /v1/projects/web sharing %s: %v; want 409 naming the shared login", name, err)
			}
		}
		r := runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "admin@" + e.node.IP, "projects", "set", "web", "--shared-logins", "deploy,alice"})
		if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "shared login alice") {
			t.Fatalf("projects set web --shared-logins deploy,alice: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		p := getProject(t, e.api(), "web")
		if !slices.Equal(p.Settings.SharedLogins, []string{"deploy"}) {
			t.Fatalf("web's shared logins after the refusals: %v", p.Settings.SharedLogins)
		}
	})
}
