package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// Access requests decided in the web console, with a real headless
// Chromium against a dev node and the real OpenSSH client: alice asks with
// `ssh bastion request`, which waits; bob, an approver who is neither
// auditor nor administrator, signs in to the console, sees only the
// requests page, and approves there; alice's waiting command reports it.
// alice (an administrator) cannot approve her own request on the page.

// consoleJITConfig continues the dev node's dev_idp block: alice the
// administrator and engineer, bob a lead who approves and nothing more.
const consoleJITConfig = `  poll_interval: 1s
  users:
    - {username: alice, password: alice, email: alice@example.com, groups: [engineering, rampart-admins]}
    - {username: bob, password: bob, email: bob@example.com, groups: [leads]}
`

func TestConsoleAccessRequest(t *testing.T) {
	node := StartDevNodeWith(t, "cjit", newIP(t, "console jit node"), consoleJITConfig)
	e := trustingEnv(t, node)
	e.key, e.config = e.signIn(t, "alice")
	// bob's account: the console decides as the account his ssh sign-in made.
	e.signInAs(t, "bob", "bob")
	createProject(t, e.api(), "web", api.ProjectSettings{})
	e.admin(t, "requests", "policy", "web", "--approvers", "leads", "--max", "1h")
	base := "https://" + node.APIAddr()

	asking := startRunningSSHUntil(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + node.IP,
		"request", "web", "--for", "30m", "--reason", `"incident 77 from the console"`}, "is pending", nil)
	m := reRequestID.FindStringSubmatch(asking.stdout.String())
	if m == nil {
		t.Fatalf("no request id in %q", asking.stdout.String())
	}
	id := m[1]
	row := fmt.Sprintf(`tr.request[data-request=%q]`, id)

	t.Run("fail/alice-cannot-approve-her-own", func(t *testing.T) {
		alice := browser(t)
		consoleSignIn(t, alice, base, "alice", "alice")
		waitJS(t, alice, "alice signed in", `!!document.querySelector('#page-sessions')`)
		runCDP(t, alice, "alice opens the requests", chromedp.Navigate(base+"/console/requests"), chromedp.WaitVisible(chromedp.ID("#page-requests")))
		waitJS(t, alice, "her request is listed as her own, with no buttons",
			fmt.Sprintf(`!!document.querySelector('#own %s') && !document.querySelector('#pending %s')`, row, row))
		// The form the page does not offer, sent anyway with her session's
		// CSRF token: control refuses it.
		res, err := evalJS[string](alice, fmt.Sprintf(`fetch('/console/requests/%s/approve', {method: 'POST',
			body: new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value})}).then(async r => r.status + ' ' + await r.text())`, id))
		fatalIf(t, err, "alice posts an approval of her own request")
		if !strings.HasPrefix(res, "403 ") || !strings.Contains(res, "your own request") {
			t.Fatalf("alice approving her own request on the page: %.300q", res)
		}
	})

	bob := browser(t)
	t.Run("ok/bob-signs-in-to-the-requests-page", func(t *testing.T) {
		consoleSignIn(t, bob, base, "bob", "bob")
		waitJS(t, bob, "bob lands on the requests page",
			`!!document.querySelector('#page-requests') && document.querySelector('#who').dataset.role === 'approver'`)
		waitJS(t, bob, "alice's request waits for him", fmt.Sprintf(`!!document.querySelector('#pending %s form.approve') &&
			document.querySelector('#pending %s .reason').textContent === 'incident 77 from the console'`, row, row))
		waitJS(t, bob, "no sessions in his header", `!document.querySelector('#nav-sessions') && !document.querySelector('#nav-live')`)
		screenshot(t, bob, "console-requests")
	})

	t.Run("fail/bob-cannot-open-the-sessions", func(t *testing.T) {
		runCDP(t, bob, "bob opens the sessions page", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("#page-error")))
		waitJS(t, bob, "bob is refused", `document.body.innerText.includes('Only auditors and administrators may see sessions')`)
		for _, path := range []string{"/console/", "/console/live", "/console/shares"} {
			status, err := evalJS[int](bob, fmt.Sprintf(`fetch(%q).then(r => r.status)`, path))
			fatalIf(t, err, "fetch "+path)
			if status != 403 {
				t.Errorf("bob fetches %s: %d, want 403", path, status)
			}
		}
	})

	t.Run("ok/bob-approves-and-alice-hears", func(t *testing.T) {
		runCDP(t, bob, "back to the requests", chromedp.Navigate(base+"/console/requests"),
			chromedp.WaitVisible(chromedp.CSS("#pending "+row+" form.approve")))
		approved := time.Now()
		runCDP(t, bob, "approve", chromedp.Click(chromedp.CSS("#pending "+row+" form.approve button")), chromedp.WaitVisible(chromedp.ID("#done")))
		waitJS(t, bob, "the page says approved", fmt.Sprintf(`document.querySelector('#done').dataset.done === 'approved' &&
			document.querySelector('#done').dataset.request === %q && document.querySelector('#decided %s').dataset.state === 'approved'`, id, row))
		select {
		case <-asking.done:
		case <-time.After(waitLong):
			t.Fatalf("alice's request command still waits after the approval: %q", asking.stdout.String())
		}
		if asking.err != nil || !strings.Contains(asking.stdout.String(), "Approved by bob") {
			t.Fatalf("alice's request command: %v; stdout %q", asking.err, asking.stdout.String())
		}
		t.Logf("timing: alice's waiting command returned %s after bob's click", asking.ended.Sub(approved).Round(time.Millisecond))
		ev, err := e.api().Audit(context.Background(), client.ListOptions{Filter: url.Values{"type": {"access_request.approve"}}})
		fatalIf(t, err, "audit query")
		if len(ev.Items) != 1 || ev.Items[0].Actor != "bob" || ev.Items[0].Fields["surface"] != "console" || ev.Items[0].Fields["request"] != id {
			t.Fatalf("approval audit events: %+v", ev.Items)
		}
	})
}
