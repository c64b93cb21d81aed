package e2e

// Scoped service tokens with real parts: a dev node, OpenSSH's ssh into the
// admin shell to make a read and an admin token, and the HTTPS API driven
// through client/ with each. The read token reads but cannot write or see
// tokens; the admin token's change is audited under its name, found by the
// audit query, and the token's last use shows in service-tokens ls.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

func TestAPIScopedTokens(t *testing.T) {
	start := time.Now()
	node := StartDevNodeWith(t, "apitokens", newIP(t, "apitokens node"), "")
	e := &scimEnv{node: node, dir: t.TempDir()}
	c := node.API()
	e.knownHosts = writeKnownHosts(t, c, e.dir)
	for _, k := range []api.CAKeys{nodeHostCAKeys(t, c), hostCAKeys(t, c)} {
		for _, line := range k.Keys {
			e.hostCA = append(e.hostCA, parseAuthorizedKey(t, line))
		}
	}
	_, e.aliceConfig, _ = e.person(t, "alice")
	e.person(t, "bob")

	readSecret := strings.TrimSpace(e.admin(t, "service-tokens", "create", "dash", "--scope", "read", "--quiet").stdout)
	adminSecret := strings.TrimSpace(e.admin(t, "service-tokens", "create", "ops", "--scope", "admin", "--ttl", "1h", "--quiet").stdout)
	rc := node.NewAPI(client.WithRootCAs(node.c.CAPool()), client.WithToken(readSecret))
	ac := node.NewAPI(client.WithRootCAs(node.c.CAPool()), client.WithToken(adminSecret))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The read token reads, page by page.
	var logins []string
	opts := client.ListOptions{Limit: 1}
	for {
		p, err := rc.Users(ctx, opts)
		fatalIf(t, err, "read token: users")
		for _, u := range p.Items {
			logins = append(logins, u.Login)
		}
		if p.NextCursor == "" {
			break
		}
		opts.Cursor = p.NextCursor
	}
	if !strings.Contains(strings.Join(logins, ","), "alice") || !strings.Contains(strings.Join(logins, ","), "bob") {
		t.Fatalf("users over pages: %v", logins)
	}
	// It cannot write, nor see the service tokens.
	var ce *client.Error
	if _, err := rc.DisableUser(ctx, "bob"); !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != "insufficient_scope" {
		t.Fatalf("read token disabling bob: %v", err)
	}
	if _, err := rc.ServiceTokens(ctx, client.ListOptions{}); !errors.As(err, &ce) || ce.Code != "insufficient_scope" {
		t.Fatalf("read token listing service tokens: %v", err)
	}

	// The admin token disables bob; the change is audited under its name.
	u, err := ac.DisableUser(ctx, "bob")
	fatalIf(t, err, "admin token: disable bob")
	if u.Status != "disabled" {
		t.Fatalf("bob after disable: %+v", u)
	}
	ev, err := rc.Audit(ctx, client.ListOptions{Filter: url.Values{"type": {"user.disable"}, "actor": {"api:ops"}}})
	fatalIf(t, err, "audit query")
	if len(ev.Items) != 1 || ev.Items[0].Fields["user"] != "bob" {
		t.Fatalf("audit events: %+v", ev.Items)
	}
	v, err := rc.VerifyAudit(ctx)
	fatalIf(t, err, "audit verify")
	if !v.OK || v.Events == 0 {
		t.Fatalf("audit verify: %+v", v)
	}
	members, err := rc.ClusterMembers(ctx, client.ListOptions{})
	fatalIf(t, err, "cluster members")
	if len(members.Items) != 1 {
		t.Fatalf("members: %+v", members.Items)
	}

	// The tokens' owner is alice, and their use is recorded (coarsely, in
	// the background): the shell shows it.
	fatalIf(t, waitFor(30*time.Second, func() error {
		p, err := ac.ServiceTokens(ctx, client.ListOptions{})
		if err != nil {
			return err
		}
		for _, st := range p.Items {
			if (st.Name == "dash" || st.Name == "ops") && (st.LastUsedAt == nil || !strings.Contains(st.Owner, "alice")) {
				return fmt.Errorf("token %+v: no last use yet", st)
			}
		}
		return nil
	}), "last-used times")
	ls := e.admin(t, "service-tokens", "ls").stdout
	for _, want := range []string{"dash", "read", "ops", "admin", "LAST USED"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("service-tokens ls lacks %q:\n%s", want, ls)
		}
	}
	t.Logf("figures: scoped-token e2e took %s", time.Since(start).Round(time.Millisecond))
}
