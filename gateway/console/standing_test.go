package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// A console person's rights are decided again on every request from their
// Rampart account: deactivated, they are refused at sign-in, their session
// ends, and their share links stop; taken out of the admin group, they lose
// the admin pages.

// standingUsers: ada administers and audits, and dan audits (he has no Rampart
// account: he never signed in with ssh).
var standingUsers = []devidp.User{
	{Username: "ada", Password: "ada-pw", Email: "ada@example.com", Groups: []string{"rampart-admins", "rampart-auditors"}},
	{Username: "dan", Password: "dan-pw", Email: "dan@example.com", Groups: []string{"rampart-auditors"}},
}

// seedAccounts makes the accounts of ann (auditor) and ada (admin), as
// their SSH sign-ins would.
func seedAccounts(t *testing.T) func(*raftstoretest.Store) {
	return func(s *raftstoretest.Store) {
		now := time.Now().UTC()
		s.MustApply(t,
			&raftstore.UserUpsert{User: raftstore.User{ID: devSubject("ann"), Login: "ann", UnixName: "ann", Email: "ann@example.com",
				Groups: []string{"rampart-auditors"}}, Now: now},
			&raftstore.UserUpsert{User: raftstore.User{ID: devSubject("ada"), Login: "ada", UnixName: "ada", Email: "ada@example.com",
				Groups: []string{"rampart-admins", "rampart-auditors"}}, Now: now})
	}
}

func (e *testEnv) setStatus(t *testing.T, user string, to raftstore.UserStatus) {
	t.Helper()
	e.store.MustApply(t, &raftstore.UserSetStatus{ID: devSubject(user), Status: to, Now: time.Now().UTC()})
}

func TestConsoleDeactivatedAccount(t *testing.T) {
	e := startConsoleWith(t, standingUsers, seedAccounts(t))

	t.Run("fail/sign-in-of-a-disabled-account", func(t *testing.T) {
		e.setStatus(t, "ann", raftstore.UserDisabled)
		defer e.setStatus(t, "ann", raftstore.UserActive)
		resp, body := e.signIn(t, e.browserClient(), "ann", "ann-pw")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "account is not active") {
			t.Fatalf("ann, disabled in Rampart, signs in: %d %s", resp.StatusCode, body)
		}
		if e.audit.count(EventSignInRefused+" ann") != 1 {
			t.Fatalf("the refusal is not audited: %v", e.audit.events)
		}
	})

	t.Run("ok/no-account-judged-by-the-token", func(t *testing.T) {
		hc := e.browserClient()
		if resp, body := e.signIn(t, hc, "dan", "dan-pw"); resp.StatusCode != http.StatusOK {
			t.Fatalf("dan (auditor, no account) signs in: %d %s", resp.StatusCode, body)
		}
		if status, _ := e.get(t, hc, "/console/"); status != http.StatusOK {
			t.Fatalf("dan's sessions page: %d", status)
		}
	})

	t.Run("fail/live-session-ends-on-deactivation", func(t *testing.T) {
		hc := e.browserClient()
		if resp, body := e.signIn(t, hc, "ann", "ann-pw"); resp.StatusCode != http.StatusOK {
			t.Fatalf("ann signs in: %d %s", resp.StatusCode, body)
		}
		if status, _ := e.get(t, hc, "/console/sessions/s-1"); status != http.StatusOK {
			t.Fatalf("ann's session page: %d", status)
		}
		e.setStatus(t, "ann", raftstore.UserDisabled)
		defer e.setStatus(t, "ann", raftstore.UserActive)
		if status, body := e.get(t, hc, "/console/sessions/s-1/cast"); status != http.StatusForbidden || !strings.Contains(body, "session has ended") {
			t.Fatalf("ann, disabled, reads a recording: %d %s", status, body)
		}
		// The session is gone, not merely refused: enabled again, she must
		// sign in again.
		e.setStatus(t, "ann", raftstore.UserActive)
		if status, body := e.get(t, hc, "/console/"); status != http.StatusUnauthorized || !strings.Contains(body, `id="signin"`) {
			t.Fatalf("ann's ended session, account enabled again: %d %s", status, body)
		}
	})

	t.Run("fail/share-link-of-a-deactivated-creator", func(t *testing.T) {
		hc, csrf := e.signedInAt(t, "ann", "ann-pw", "/console/sessions/s-1")
		status, final, body := e.post(t, hc, "/console/sessions/s-1/share", e.srv.URL, url.Values{"ttl": {"30d"}, "csrf": {csrf}})
		link := final.Query().Get("shared")
		if status != http.StatusOK || !strings.HasPrefix(link, "/console/share/") {
			t.Fatalf("ann shares s-1: %d %s", status, body)
		}
		anon := e.browserClient()
		if status, _ := e.get(t, anon, link+"/cast"); status != http.StatusOK {
			t.Fatalf("the link: %d", status)
		}
		e.setStatus(t, "ann", raftstore.UserDeleted)
		if status, _ := e.get(t, anon, link+"/cast"); status != http.StatusForbidden {
			t.Fatalf("the link of a deleted creator: %d", status)
		}
	})
}

func TestConsoleAdminLeavesTheGroup(t *testing.T) {
	e := startConsoleWith(t, standingUsers, seedAccounts(t))
	hc := e.browserClient()
	if resp, body := e.signIn(t, hc, "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("ada signs in: %d %s", resp.StatusCode, body)
	}
	if status, body := e.get(t, hc, "/console/live"); status != http.StatusOK {
		t.Fatalf("ada's live page: %d %s", status, body)
	}
	regroup := func(groups ...string) {
		e.store.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: devSubject("ada"), Login: "ada", UnixName: "ada", Email: "ada@example.com",
			Groups: groups}, Now: time.Now().UTC()})
	}
	// Her re-validation finds her out of the admin group: the console
	// follows the account at once; she is still an auditor.
	regroup("rampart-auditors")
	if status, body := e.get(t, hc, "/console/live"); status != http.StatusForbidden || !strings.Contains(body, "Only administrators") {
		t.Fatalf("ada, out of the admin group, opens the live page: %d %s", status, body)
	}
	if status, body := e.get(t, hc, "/console/"); status != http.StatusOK || strings.Contains(body, `id="nav-live"`) {
		t.Fatalf("ada, an auditor now, opens the sessions page: %d %s", status, body)
	}
	// Out of the auditors too: she has no role left, and her session ends.
	regroup()
	if status, body := e.get(t, hc, "/console/"); status != http.StatusForbidden || !strings.Contains(body, "no longer have a role") {
		t.Fatalf("ada, with no role left: %d %s", status, body)
	}
	regroup("rampart-admins", "rampart-auditors")
	if status, _ := e.get(t, hc, "/console/"); status != http.StatusUnauthorized {
		t.Fatalf("ada's ended session, back in the groups: %d", status)
	}
}

func TestConsoleAuditCarriesSubject(t *testing.T) {
	e := startConsoleWith(t, standingUsers, seedAccounts(t))
	hc := e.browserClient()
	e.signIn(t, hc, "ann", "ann-pw")
	if status, _ := e.get(t, hc, "/console/sessions/s-1/cast"); status != http.StatusOK {
		t.Fatalf("ann reads s-1: %d", status)
	}
	want := map[string]bool{EventSignIn: false, EventRecordingView: false}
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	for i, ev := range e.audit.events {
		typ, _, _ := strings.Cut(ev, " ")
		if _, ok := want[typ]; !ok {
			continue
		}
		f := e.audit.fields[i]
		if f["sub"] != devSubject("ann") || f["user_id"] != devSubject("ann") {
			t.Errorf("%s: fields %v lack ann's sub and user_id", typ, f)
		}
		want[typ] = true
	}
	for typ, seen := range want {
		if !seen {
			t.Errorf("no %s event: %v", typ, e.audit.events)
		}
	}
}

// signedInAt signs user in and returns their client and the CSRF token of
// page.
func (e *testEnv) signedInAt(t *testing.T, user, password, page string) (*http.Client, string) {
	t.Helper()
	hc := e.browserClient()
	if resp, body := e.signIn(t, hc, user, password); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s signs in: %d %s", user, resp.StatusCode, body)
	}
	_, body := e.get(t, hc, page)
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s: no CSRF token on %s: %s", user, page, body)
	}
	return hc, m[1]
}
