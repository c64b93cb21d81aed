package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampart-ssh/rampart/api"
)

// The web console, driven by a real headless Chromium (Debian's chromium)
// through chromedp, against a dev node with its dev IdP and a real target:
// sign-in, search, playback at the hit, share links, refusal, and an admin
// ending a live session. Every step is asserted on the page's DOM.

// browser starts a headless Chromium of its own (a fresh profile: no
// cookies shared with any other) and returns a context for its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (Debian package chromium; .ci/run installs it)")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		// The node's API certificate is signed by the cluster's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1400, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	fatalIf(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// runCDP runs actions with a deadline, failing the test with what.
func runCDP(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		body, _ := evalJS[string](ctx, `document.body ? document.body.innerText : ""`)
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// evalJS evaluates a JavaScript expression (awaiting a promise) in the page.
func evalJS[T any](ctx context.Context, expr string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitJS waits until the JavaScript expression is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var body string
	err := waitFor(waitLong, func() error {
		ok, err := evalJS[bool](ctx, expr)
		if err != nil {
			return err
		}
		if !ok {
			body, _ = evalJS[string](ctx, `document.body ? document.body.innerText : ""`)
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// consoleSignIn signs user in through the dev IdP's pages.
func consoleSignIn(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	runCDP(t, ctx, "open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("#signin")))
	runCDP(t, ctx, "sign in at the dev IdP", chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.CSS(`#page-signin #username`)),
		chromedp.SendKeys(chromedp.ID("#username"), user), chromedp.SendKeys(chromedp.ID("#password"), password),
		chromedp.Click(chromedp.ID("#signin")))
}

// screenshot saves the page as docs/img/<name>.png when
// RAMPART_CONSOLE_SCREENSHOTS names the directory (docs/console.md shows them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("RAMPART_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	fatalIf(t, err, "screenshot "+name)
	fatalIf(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

func TestConsole(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{Recording: new(true)}, true)
	base := "https://" + e.node.APIAddr()
	jump := "alice@" + net.JoinHostPort(e.node.IP, portSSH)
	admin := browser(t)

	t.Run("ok/sign-in-through-the-dev-idp", func(t *testing.T) {
		consoleSignIn(t, admin, base, "alice", "alice")
		waitJS(t, admin, "the sessions page, signed in as alice",
			`!!document.querySelector('#page-sessions') && document.querySelector('#who').dataset.user === 'alice'`)
		cookies, err := evalJS[[]string](admin, `document.cookie.split('; ')`)
		fatalIf(t, err, "read the cookies")
		if slices.ContainsFunc(cookies, func(c string) bool { return strings.HasPrefix(c, "__Host-rampart_console=") }) {
			t.Fatal("the session cookie is readable from script: it must be HttpOnly")
		}
	})

	marker := "rampart-mark-" + fmt.Sprint(time.Now().UnixNano()%1_000_000_007)
	var sessionID string
	t.Run("ok/person-types-a-marker", func(t *testing.T) {
		termDir := filepath.Join(e.dir, "console-term")
		fatalIf(t, os.Mkdir(termDir, 0o700))
		term := startTerminal(t, termDir, []string{"ssh", "-F", e.config, "-J", jump, "-t", "alice@web-1"})
		term.WaitScreen(waitLong, "a shell prompt", func(screen string) error {
			if m := exitMarker.FindStringSubmatch(screen); m != nil {
				return stopWaiting(fmt.Errorf("ssh exited %s", m[1]))
			}
			if !strings.Contains(screen, "$") {
				return fmt.Errorf("no prompt yet")
			}
			return nil
		})
		out, err := term.tmux("send-keys", "-t", "rampart", "echo "+marker+" | tr a-z A-Z", "Enter")
		fatalIf(t, err, out)
		term.WaitScreen(waitLong, "the command's output", func(screen string) error {
			if !strings.Contains(screen, strings.ToUpper(marker)) {
				return fmt.Errorf("no output yet")
			}
			return nil
		})
		out, err = term.tmux("send-keys", "-t", "rampart", "exit", "Enter")
		fatalIf(t, err, out)
		if screen, code := waitExit(t, term); code != 0 {
			t.Fatalf("session exited %d:\n%s", code, screen)
		}
	})

	var apiHits []string
	t.Run("ok/search-finds-it", func(t *testing.T) {
		// The node indexes a recording once its session has closed.
		fatalIf(t, waitFor(waitLong, func() error {
			res, err := e.api().SearchSessions(context.Background(), marker, nil)
			if err != nil {
				return err
			}
			if len(res.Hits) == 0 {
				return fmt.Errorf("no hits yet")
			}
			apiHits = nil
			for _, h := range res.Hits {
				apiHits = append(apiHits, h.Session)
			}
			sessionID = res.Hits[0].Session
			return nil
		}), "the API search finds the marker")
		runCDP(t, admin, "search in the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("#q")),
			chromedp.SendKeys(chromedp.ID("#q"), marker), chromedp.Click(chromedp.ID("#search")),
			chromedp.WaitVisible(chromedp.CSS("#sessions a.hit")))
		pageHits, err := evalJS[[]string](admin, `[...document.querySelectorAll('#sessions tr.session')].map(r => r.dataset.session)`)
		fatalIf(t, err, "read the hits")
		if !slices.Equal(pageHits, apiHits) {
			t.Fatalf("the console found %v, the API %v", pageHits, apiHits)
		}
		screenshot(t, admin, "console-search")
	})

	t.Run("ok/player-shows-the-marker-at-the-hit", func(t *testing.T) {
		runCDP(t, admin, "open the hit", chromedp.Click(chromedp.CSS("#sessions a.hit")), chromedp.WaitVisible(chromedp.ID("#player")))
		// The first hit is the line the person typed; the player (not the
		// hit list beside it) must show it at that moment.
		waitJS(t, admin, "the player shows the marker at the hit",
			fmt.Sprintf(`document.querySelector('#player').innerText.includes(%q)`, marker))
		waitJS(t, admin, "the hit's session", fmt.Sprintf(`document.querySelector('#session-id').textContent === %q`, sessionID))
		waitJS(t, admin, "the hit is marked on the timeline", `document.querySelectorAll('#player .ap-marker').length > 0`)
		waitJS(t, admin, "the session's events are beside it", `[...document.querySelectorAll('#events .event-type')].some(e => e.textContent === 'session.open')`)
		screenshot(t, admin, "console-playback")
	})

	var link string
	viewer := browser(t)
	t.Run("ok/share-link-in-a-fresh-browser", func(t *testing.T) {
		runCDP(t, admin, "create a share link", chromedp.Click(chromedp.ID("share")), chromedp.WaitVisible(chromedp.ID("share-link")))
		var err error
		link, err = evalJS[string](admin, `document.querySelector('#share-link').value`)
		fatalIf(t, err, "read the link")
		runCDP(t, viewer, "open the link", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.ID("#player")))
		waitJS(t, viewer, "the player is ready", `!!document.querySelector('#player').rampartPlayer`)
		_, err = evalJS[bool](viewer, `Promise.resolve(document.querySelector('#player').rampartPlayer.play()).then(() => true)`)
		fatalIf(t, err, "play")
		waitJS(t, viewer, "the shared recording plays the marker",
			fmt.Sprintf(`document.querySelector('#player').innerText.includes(%q)`, strings.ToUpper(marker)))
	})
	t.Run("ok/share-link-stops-once-revoked", func(t *testing.T) {
		runCDP(t, admin, "revoke the link", chromedp.Navigate(base+"/console/shares"),
			chromedp.WaitVisible(chromedp.CSS("#shares button.revoke")), chromedp.Click(chromedp.CSS("#shares button.revoke")),
			chromedp.WaitVisible(chromedp.CSS("#page-shares")))
		waitJS(t, admin, "the link is listed as revoked", `document.querySelector('#shares').innerText.includes('revoked by alice')`)
		runCDP(t, viewer, "open the revoked link", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.CSS("#page-error")))
		status, err := evalJS[int](viewer, fmt.Sprintf(`fetch(%q).then(r => r.status)`, base+link+"/cast"))
		fatalIf(t, err, "fetch the revoked link's recording")
		if status != 403 {
			t.Fatalf("the revoked link's recording answered %d, want 403", status)
		}
	})

	t.Run("fail/outside-the-auditor-group", func(t *testing.T) {
		bob := browser(t)
		consoleSignIn(t, bob, base, "bob", "bob")
		waitJS(t, bob, "bob is refused", `!!document.querySelector('#page-error') && document.body.innerText.includes('only for members of the rampart-auditors group')`)
		runCDP(t, bob, "bob cannot reach the sessions", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("#signin")))
	})

	t.Run("ok/admin-ends-a-live-session", func(t *testing.T) {
		s := startRunningSSH(t, []string{"ssh", "-F", e.config, "-J", jump, "alice@web-1", "echo started; sleep 300"})
		reason := "console-e2e audit freeze " + fmt.Sprint(time.Now().Unix()%100000)
		runCDP(t, admin, "open the live sessions", chromedp.Navigate(base+"/console/live"),
			chromedp.WaitVisible(chromedp.CSS("#live tr.session form.kill")))
		screenshot(t, admin, "console-live")
		start := time.Now()
		runCDP(t, admin, "end it", chromedp.SendKeys(chromedp.CSS(`#live tr.session form.kill input[name=reason]`), reason),
			chromedp.Submit(chromedp.CSS(`#live tr.session form.kill`)), chromedp.WaitVisible(chromedp.ID("#ended")))
		s.waitEnded(t, "the console's End", start)
		if !strings.Contains(s.stderr.String(), reason) {
			t.Fatalf("the person was not shown the reason %q; ssh stderr:\n%s", reason, s.stderr.String())
		}
	})

	// Last: alice's account is disabled while she is signed in to the
	// console. Her next request ends her console session, and the link she
	// made stops working.
	t.Run("fail/disabled-account-loses-the-console", func(t *testing.T) {
		runCDP(t, admin, "share the session again", chromedp.Navigate(base+"/console/sessions/"+sessionID),
			chromedp.WaitVisible(chromedp.ID("share")), chromedp.Click(chromedp.ID("share")), chromedp.WaitVisible(chromedp.ID("share-link")))
		link, err := evalJS[string](admin, `document.querySelector('#share-link').value`)
		fatalIf(t, err, "read the link")
		castStatus := func() int {
			status, err := evalJS[int](viewer, fmt.Sprintf(`fetch(%q).then(r => r.status)`, base+link+"/cast"))
			fatalIf(t, err, "fetch the link's recording")
			return status
		}
		if got := castStatus(); got != 200 {
			t.Fatalf("the new link's recording answered %d", got)
		}
		_, err = e.api().DisableUser(context.Background(), "alice")
		fatalIf(t, err, "disable alice")
		runCDP(t, admin, "open the sessions page, disabled", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#page-error")))
		waitJS(t, admin, "alice is told her session ended", `document.body.innerText.includes('account is not active')`)
		runCDP(t, admin, "her session is gone", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("#signin")))
		if got := castStatus(); got != 403 {
			t.Fatalf("the link of a disabled maker answered %d, want 403", got)
		}
	})
}
