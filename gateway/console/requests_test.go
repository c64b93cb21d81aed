package console

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The requests page and its role model, on a real control.Service over an
// in-memory store: an approver who is no auditor signs in to the requests
// page alone; approvals and denials go through control (never self, only
// approvers, one audit event with surface=console); the role cached at
// sign-in never decides; every decision needs the CSRF token and this
// origin.

// devSubject is the dev IdP's subject of username (gateway/devidp
// subjectFor): SSH sign-in makes the person's account with this id.
func devSubject(username string) string {
	h := sha256.Sum256([]byte("rampart-devidp-subject:" + username))
	return "dev-" + hex.EncodeToString(h[:12])
}

// requestUsers: bob and carl lead (carl has no Rampart account: he never
// signed in with ssh), alice asks, ada administers.
var requestUsers = []devidp.User{
	{Username: "bob", Password: "bob-pw", Email: "bob@example.com", Groups: []string{"leads"}},
	{Username: "carl", Password: "carl-pw", Email: "carl@example.com", Groups: []string{"leads"}},
	{Username: "alice", Password: "alice-pw", Email: "alice@example.com", Groups: []string{"engineering"}},
	{Username: "ada", Password: "ada-pw", Email: "ada@example.com", Groups: []string{"rampart-admins"}},
}

// seedRequests makes project web (approvers: leads), the accounts of bob,
// alice and ada, and pending requests by alice (r-aliceaxx, r-alicebxx)
// and by ada (r-adaxxxxx).
func seedRequests(t *testing.T) func(*raftstoretest.Store) {
	return func(s *raftstoretest.Store) {
		now := time.Now().UTC()
		settings := raftstore.DefaultProjectSettings()
		settings.Requests = &raftstore.RequestPolicy{Approvers: []string{"leads"}}
		cmds := []raftstore.Command{
			&raftstore.GroupUpsert{Name: "leads", GID: 20002, Now: now},
			&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: settings}, Now: now},
		}
		for _, u := range []struct {
			name   string
			groups []string
		}{{"bob", []string{"leads"}}, {"alice", []string{"engineering"}}, {"ada", []string{"rampart-admins"}}} {
			cmds = append(cmds, &raftstore.UserUpsert{User: raftstore.User{ID: devSubject(u.name), Login: u.name, UnixName: u.name,
				Email: u.name + "@example.com", Groups: u.groups}, Now: now})
		}
		cmds = append(cmds,
			&raftstore.AccessRequestCreate{ID: "r-aliceaxx", Project: "web", UserID: devSubject("alice"), Reason: "incident 42", Duration: time.Hour, Now: now},
			&raftstore.AccessRequestCreate{ID: "r-adaxxxxx", Project: "web", UserID: devSubject("ada"), Reason: "my own", Duration: time.Hour, Now: now})
		s.MustApply(t, cmds...)
	}
}

// get returns the status and body of path.
func (e *testEnv) get(t *testing.T, hc *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := hc.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	return resp.StatusCode, body
}

// post sends a form with an Origin header ("" sends none) and returns the
// final status, URL and body.
func (e *testEnv) post(t *testing.T, hc *http.Client, path, origin string, form url.Values) (int, *url.URL, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	return resp.StatusCode, resp.Request.URL, body
}

// requestState is request id's state in the store.
func (e *testEnv) requestState(t *testing.T, id string) raftstore.AccessRequestState {
	t.Helper()
	_, r, err := e.store.State().AccessRequestByID(nil, id)
	if err != nil || r == nil {
		t.Fatalf("request %s: %v", id, err)
	}
	return r.State
}

// auditOf returns the store's audit events of type typ.
func (e *testEnv) auditOf(t *testing.T, typ string) []*raftstore.AuditEvent {
	t.Helper()
	_, all, err := e.store.State().AuditSince(nil, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*raftstore.AuditEvent
	for _, ev := range all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// signedInAs signs user in and returns the client and the CSRF token of
// their first page.
func (e *testEnv) signedInAs(t *testing.T, user, password string) (*http.Client, string) {
	t.Helper()
	hc := e.browserClient()
	resp, body := e.signIn(t, hc, user, password)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s signs in: %d %s", user, resp.StatusCode, body)
	}
	home := "/console/requests"
	_, page := e.get(t, hc, home)
	m := reCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("%s: no CSRF token on %s: %s", user, home, page)
	}
	return hc, m[1]
}

func TestConsoleApproverRole(t *testing.T) {
	e := startConsoleWith(t, requestUsers, seedRequests(t))

	t.Run("ok/approver-sees-requests-only", func(t *testing.T) {
		hc := e.browserClient()
		resp, body := e.signIn(t, hc, "bob", "bob-pw")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/console/requests"`) {
			t.Fatalf("bob signs in: %d %s", resp.StatusCode, body)
		}
		if e.audit.count(EventSignIn+" bob") != 1 {
			t.Fatalf("bob's sign-in not audited: %v", e.audit.events)
		}
		status, page := e.get(t, hc, "/console/requests")
		if status != http.StatusOK || !strings.Contains(page, `data-request="r-aliceaxx"`) || !strings.Contains(page, `/console/requests/r-aliceaxx/approve`) {
			t.Fatalf("bob's requests page: %d %s", status, page)
		}
		if !strings.Contains(page, `data-role="approver"`) || strings.Contains(page, `id="nav-sessions"`) {
			t.Fatalf("bob's header shows pages he may not open: %s", page)
		}
		for _, path := range []string{"/console/", "/console/sessions/s-1", "/console/sessions/s-1/cast", "/console/shares", "/console/live"} {
			if status, body := e.get(t, hc, path); status != http.StatusForbidden {
				t.Errorf("bob opens %s: %d %s", path, status, body)
			}
		}
	})

	t.Run("fail/approver-without-account", func(t *testing.T) {
		resp, body := e.signIn(t, e.browserClient(), "carl", "carl-pw")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "approvers of access requests") {
			t.Fatalf("carl (no Rampart account) signs in: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("fail/auditor-is-no-approver", func(t *testing.T) {
		hc := e.browserClient()
		e.signIn(t, hc, "ann", "ann-pw")
		if status, body := e.get(t, hc, "/console/requests"); status != http.StatusForbidden {
			t.Fatalf("ann (auditor) opens the requests page: %d %s", status, body)
		}
	})

	t.Run("fail/requester-without-role", func(t *testing.T) {
		if resp, body := e.signIn(t, e.browserClient(), "alice", "alice-pw"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("alice (neither auditor nor approver) signs in: %d %s", resp.StatusCode, body)
		}
	})
}

func TestConsoleDecisions(t *testing.T) {
	e := startConsoleWith(t, requestUsers, seedRequests(t))
	bob, csrf := e.signedInAs(t, "bob", "bob-pw")
	origin := e.srv.URL

	t.Run("fail/no-csrf-token", func(t *testing.T) {
		status, _, _ := e.post(t, bob, "/console/requests/r-aliceaxx/approve", origin, url.Values{})
		if status != http.StatusForbidden || e.requestState(t, "r-aliceaxx") != raftstore.RequestPending {
			t.Fatalf("approve without the CSRF token: %d, request %s", status, e.requestState(t, "r-aliceaxx"))
		}
		status, _, _ = e.post(t, bob, "/console/requests/r-aliceaxx/deny", origin, url.Values{"reason": {"no"}, "csrf": {"forged"}})
		if status != http.StatusForbidden || e.requestState(t, "r-aliceaxx") != raftstore.RequestPending {
			t.Fatalf("deny with a forged CSRF token: %d, request %s", status, e.requestState(t, "r-aliceaxx"))
		}
	})
	t.Run("fail/other-origin", func(t *testing.T) {
		status, _, _ := e.post(t, bob, "/console/requests/r-aliceaxx/approve", "https://evil.example", url.Values{"csrf": {csrf}})
		if status != http.StatusForbidden || e.requestState(t, "r-aliceaxx") != raftstore.RequestPending {
			t.Fatalf("approve from another origin: %d, request %s", status, e.requestState(t, "r-aliceaxx"))
		}
	})
	t.Run("fail/deny-without-reason", func(t *testing.T) {
		status, _, body := e.post(t, bob, "/console/requests/r-aliceaxx/deny", origin, url.Values{"csrf": {csrf}, "reason": {"  "}})
		if status != http.StatusBadRequest || !strings.Contains(body, "Give a reason") || e.requestState(t, "r-aliceaxx") != raftstore.RequestPending {
			t.Fatalf("deny without a reason: %d %s", status, body)
		}
	})
	t.Run("ok/approve", func(t *testing.T) {
		status, u, body := e.post(t, bob, "/console/requests/r-aliceaxx/approve", origin, url.Values{"csrf": {csrf}})
		if status != http.StatusOK || u.Query().Get("done") != "approved" || !strings.Contains(body, `id="done"`) {
			t.Fatalf("bob approves: %d %s %s", status, u, body)
		}
		if got := e.requestState(t, "r-aliceaxx"); got != raftstore.RequestApproved {
			t.Fatalf("request after bob's approval: %s", got)
		}
		evs := e.auditOf(t, "access_request.approve")
		if len(evs) != 1 || evs[0].Actor != "bob" || evs[0].Fields["surface"] != SurfaceConsole || evs[0].Fields["request"] != "r-aliceaxx" ||
			evs[0].Fields["approver"] != "bob" {
			t.Fatalf("approval audit events: %+v", evs)
		}
	})
	t.Run("ok/deny-with-reason", func(t *testing.T) {
		e.store.MustApply(t, &raftstore.AccessRequestCreate{ID: "r-alicebxx", Project: "web", UserID: devSubject("alice"), Reason: "again",
			Duration: time.Hour, Now: e.now().UTC()})
		status, u, _ := e.post(t, bob, "/console/requests/r-alicebxx/deny", origin, url.Values{"csrf": {csrf}, "reason": {"not during the freeze"}})
		if status != http.StatusOK || u.Query().Get("done") != "denied" || e.requestState(t, "r-alicebxx") != raftstore.RequestDenied {
			t.Fatalf("bob denies: %d %s, request %s", status, u, e.requestState(t, "r-alicebxx"))
		}
		evs := e.auditOf(t, "access_request.deny")
		if len(evs) != 1 || evs[0].Fields["reason"] != "not during the freeze" || evs[0].Fields["surface"] != SurfaceConsole {
			t.Fatalf("denial audit events: %+v", evs)
		}
	})
	t.Run("fail/own-request-even-as-admin", func(t *testing.T) {
		ada, adaCSRF := e.signedInAs(t, "ada", "ada-pw")
		_, page := e.get(t, ada, "/console/requests")
		if !strings.Contains(page, `id="own"`) || strings.Contains(page, "/console/requests/r-adaxxxxx/approve") {
			t.Fatalf("ada's page offers to decide her own request: %s", page)
		}
		status, _, body := e.post(t, ada, "/console/requests/r-adaxxxxx/approve", origin, url.Values{"csrf": {adaCSRF}})
		if status != http.StatusForbidden || !strings.Contains(body, "your own request") || e.requestState(t, "r-adaxxxxx") != raftstore.RequestPending {
			t.Fatalf("ada approves her own request: %d %s", status, body)
		}
	})
	t.Run("fail/role-at-sign-in-does-not-decide", func(t *testing.T) {
		// bob leaves the approvers after signing in: his console session
		// still opens the page, but control refuses his decision.
		e.store.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: devSubject("bob"), Login: "bob", UnixName: "bob",
			Email: "bob@example.com", Groups: []string{"engineering"}}, Now: e.now().UTC()})
		e.store.MustApply(t, &raftstore.AccessRequestCreate{ID: "r-alicecxx", Project: "web", UserID: devSubject("alice"), Reason: "third",
			Duration: time.Hour, Now: e.now().UTC()})
		status, _, body := e.post(t, bob, "/console/requests/r-alicecxx/approve", origin, url.Values{"csrf": {csrf}})
		if status != http.StatusForbidden || !strings.Contains(body, "not an approver of project web") || e.requestState(t, "r-alicecxx") != raftstore.RequestPending {
			t.Fatalf("bob, no longer a lead, approves: %d %s", status, body)
		}
	})
	t.Run("fail/admin-the-idp-took-out", func(t *testing.T) {
		// ada signed in as an administrator; her account's token groups
		// no longer name the admin group: she decides as a non-approver.
		ada, adaCSRF := e.signedInAs(t, "ada", "ada-pw")
		e.store.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: devSubject("ada"), Login: "ada", UnixName: "ada",
			Email: "ada@example.com", Groups: []string{"engineering"}}, Now: e.now().UTC()})
		status, _, body := e.post(t, ada, "/console/requests/r-alicecxx/approve", origin, url.Values{"csrf": {adaCSRF}})
		if status != http.StatusForbidden || e.requestState(t, "r-alicecxx") != raftstore.RequestPending {
			t.Fatalf("ada, no longer an administrator, approves: %d %s", status, body)
		}
	})
}
