package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// switchAuditor records events, or fails while failing is set.
type switchAuditor struct {
	mu      sync.Mutex
	failing bool
	events  []string
}

func (a *switchAuditor) Record(_ context.Context, typ, actor string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failing {
		return errors.New("audit log unavailable")
	}
	a.events = append(a.events, typ+" "+actor+" "+fields["session"])
	return nil
}

func (a *switchAuditor) set(failing bool) { a.mu.Lock(); a.failing = failing; a.mu.Unlock() }

func (a *switchAuditor) count(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// directConsole is a console whose handlers the test calls directly, as
// the signed-in person ann, over a store with the recorded session s-1.
func directConsole(t *testing.T, au Auditor) (*Console, *raftstoretest.Store, *time.Time) {
	t.Helper()
	store := raftstoretest.New(t)
	t0 := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	store.MustApply(t,
		&raftstore.SessionOpen{Session: raftstore.Session{ID: "s-1", UserID: "u-1", Login: "ann", ServerID: "srv-1", Project: "web", Node: "n1", Start: t0}},
		&raftstore.SessionClose{ID: "s-1", End: t0.Add(time.Minute), RecordingPath: "n1/s-1.cast", RecordingSHA256: strings.Repeat("a", 64), EndReason: "closed"},
		&raftstore.SessionOpen{Session: raftstore.Session{ID: "s-2", UserID: "u-1", Login: "ann", ServerID: "srv-1", Project: "web", Node: "n1", Start: t0}},
		&raftstore.SessionClose{ID: "s-2", End: t0.Add(time.Minute), RecordingPath: "n1/s-2.cast", RecordingSHA256: strings.Repeat("b", 64), EndReason: "closed"})
	clock := t0.Add(time.Hour)
	c := New(Config{Issuer: "http://127.0.0.1:1"}, Deps{State: store, Applier: store,
		Recordings: fakeRecordings{cast: `{"version": 2, "width": 80, "height": 24}` + "\n" + `[1.5, "o", "hello\r\n"]` + "\n"},
		Auditor:    au, Killer: noKiller{}, ShareKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return clock }})
	return c, store, &clock
}

func postForm(target string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	return r
}

func liveShares(t *testing.T, store *raftstoretest.Store, now time.Time) int {
	t.Helper()
	_, all, err := store.State().ConsoleShares(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range all {
		if s.Live(now) {
			n++
		}
	}
	return n
}

// A share link whose creation or revocation cannot be audited is not
// made (or is reported): no live link exists that the audit log lacks.
func TestShareAuditFailureFailsTheOperation(t *testing.T) {
	au := &switchAuditor{}
	c, store, clock := directConsole(t, au)
	ann := &consoleSession{User: "ann"}
	create := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := postForm("/console/sessions/s-1/share", url.Values{"ttl": {"24h"}})
		r.SetPathValue("id", "s-1")
		c.createShare(w, r, ann)
		return w
	}
	au.set(true)
	if w := create(); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("create with the audit log down: %d", w.Code)
	}
	if n := liveShares(t, store, *clock); n != 0 {
		t.Fatalf("%d live links after an unaudited creation", n)
	}
	au.set(false)
	if w := create(); w.Code != http.StatusSeeOther {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	_, all, _ := store.State().ConsoleShares(nil)
	var id string
	for _, s := range all {
		if s.Live(*clock) {
			id = s.ID
		}
	}
	revoke := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := postForm("/console/shares/"+id+"/revoke", url.Values{})
		r.SetPathValue("id", id)
		c.revokeShare(w, r, ann)
		return w
	}
	au.set(true)
	if w := revoke(); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("revoke with the audit log down: %d", w.Code)
	}
	au.set(false)
	if w := revoke(); w.Code != http.StatusSeeOther || au.count(EventShareRevoke+" ann") != 1 {
		t.Fatalf("revoke again: %d, %d revoke events", w.Code, au.count(EventShareRevoke))
	}
}

// The session page's "copy it now" box shows only a link the server made
// for that session, for the person who made it, just now: never a
// ?shared= string someone else put in a URL.
func TestSessionPageShowsOnlyAJustMadeLink(t *testing.T) {
	au := &switchAuditor{}
	c, _, clock := directConsole(t, au)
	ann := &consoleSession{User: "ann"}
	w := httptest.NewRecorder()
	r := postForm("/console/sessions/s-1/share", url.Values{"ttl": {"24h"}})
	r.SetPathValue("id", "s-1")
	c.createShare(w, r, ann)
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || w.Code != http.StatusSeeOther {
		t.Fatalf("create: %d %v", w.Code, err)
	}
	link := loc.Query().Get("shared")
	page := func(session, shared string, who *consoleSession) string {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/console/sessions/"+session+"?shared="+url.QueryEscape(shared), nil)
		r.SetPathValue("id", session)
		c.sessionPage(w, r, who)
		return w.Body.String()
	}
	if got := page("s-1", link, ann); !strings.Contains(got, link) {
		t.Fatalf("the maker is not shown the link just made")
	}
	for _, tc := range []struct {
		name, session, shared string
		who                   *consoleSession
	}{
		{"fail/forged", "s-1", "/console/share/attacker-controlled.text", ann},
		{"fail/another-session", "s-2", link, ann},
		{"fail/someone-else", "s-1", link, &consoleSession{User: "bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := page(tc.session, tc.shared, tc.who); strings.Contains(got, tc.shared) {
				t.Fatalf("the page shows %q", tc.shared)
			}
		})
	}
	t.Run("fail/later", func(t *testing.T) {
		*clock = clock.Add(shareShownFor + time.Second)
		if got := page("s-1", link, ann); strings.Contains(got, link) {
			t.Fatal("the link is shown long after it was made")
		}
	})
}

// Each play of a share link is one audit event, and a link (or one source
// address) played faster than the limit is refused 429 without writing
// any.
func TestShareCastOneEventAndRateLimited(t *testing.T) {
	au := &switchAuditor{}
	c, _, _ := directConsole(t, au)
	w := httptest.NewRecorder()
	r := postForm("/console/sessions/s-1/share", url.Values{"ttl": {"24h"}})
	r.SetPathValue("id", "s-1")
	c.createShare(w, r, &consoleSession{User: "ann"})
	loc, _ := url.Parse(w.Header().Get("Location"))
	token := strings.TrimPrefix(loc.Query().Get("shared"), Prefix+"share/")
	play := func(remote string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/console/share/"+token+"/cast", nil)
		r.RemoteAddr = remote
		r.SetPathValue("token", token)
		c.shareCast(w, r)
		return w.Code
	}
	if got := play("203.0.113.5:1000"); got != http.StatusOK {
		t.Fatalf("play: %d", got)
	}
	if n := au.count(""); n != 2 { // console_share.create, then one view
		t.Fatalf("one play wrote %d events: %v", n-1, au.events)
	}
	refused := 0
	for i := range 3 * shareBurst {
		// A new port each time: the same address.
		if play("203.0.113.5:"+strconv.Itoa(2000+i)) == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no play refused past the burst")
	}
	if views := au.count(EventRecordingView); views > shareBurst {
		t.Fatalf("%d views audited past a burst of %d", views, shareBurst)
	}
}
