package console

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// fakeRecordings serves one recording for every session.
type fakeRecordings struct{ cast string }

func (f fakeRecordings) Open(context.Context, *raftstore.Session) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.cast)), nil
}

// memAuditor keeps the events written.
type memAuditor struct {
	mu     sync.Mutex
	events []string
	fields []map[string]string // of each event, in events' order
}

func (a *memAuditor) Record(_ context.Context, typ, actor string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, typ+" "+actor+" "+fields["session"])
	a.fields = append(a.fields, fields)
	return nil
}

func (a *memAuditor) count(prefix string) int {
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

type noKiller struct{}

func (noKiller) EndSession(context.Context, control.Actor, string, string) error { return nil }

// testEnv is a console behind TLS, a dev IdP, and a store with one
// recorded session s-1.
type testEnv struct {
	srv   *httptest.Server
	store *raftstoretest.Store
	audit *memAuditor
	clock *time.Time
	mu    sync.Mutex
}

func (e *testEnv) now() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return *e.clock }
func (e *testEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.clock = e.clock.Add(d)
}

func startConsole(t *testing.T) *testEnv {
	t.Helper()
	return startConsoleWith(t, nil, nil)
}

// startConsoleWith is startConsole with more IdP users, and, when seed is
// set, the store seeded by it and the access requests page on a real
// control.Service over the same store.
func startConsoleWith(t *testing.T, users []devidp.User, seed func(*raftstoretest.Store)) *testEnv {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + l.Addr().String()
	idp, err := devidp.New(devidp.Config{Issuer: issuer,
		Clients: []devidp.Client{{ID: "console", RedirectURIs: []string{"https://" + srv.Listener.Addr().String() + "/console/callback"}}},
		Users: append([]devidp.User{
			{Username: "ann", Password: "ann-pw", Email: "ann@example.com", Groups: []string{"rampart-auditors"}},
			{Username: "eve", Password: "eve-pw", Email: "eve@example.com", Groups: []string{"engineering"}},
		}, users...)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = idp.Serve(ctx, l) }()
	t.Cleanup(cancel)

	store := raftstoretest.New(t)
	t0 := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	store.MustApply(t,
		&raftstore.SessionOpen{Session: raftstore.Session{ID: "s-1", UserID: "u-1", Login: "ann", ServerID: "srv-1", Project: "web", Node: "n1", Start: t0}},
		&raftstore.SessionClose{ID: "s-1", End: t0.Add(time.Minute), RecordingPath: "n1/s-1.cast", RecordingSHA256: strings.Repeat("a", 64), EndReason: "closed"})
	clock := time.Now()
	e := &testEnv{audit: &memAuditor{}, clock: &clock, store: store}
	var requests Requests
	if seed != nil {
		seed(store)
		requests = control.New(control.Deps{Store: store, Auditor: control.StoreAuditor{Store: store, Now: e.now}, Now: e.now})
	}
	c := New(Config{Issuer: issuer, ClientID: "console", RedirectURL: "https://" + srv.Listener.Addr().String() + "/console/callback",
		Scopes: []string{"openid", "profile", "groups"}, UsernameClaim: "preferred_username", GroupsClaim: "groups", AdminGroup: "rampart-admins"},
		Deps{State: store, Applier: store, Recordings: fakeRecordings{cast: `{"version": 2, "width": 80, "height": 24}` + "\n" + `[1.5, "o", "hello\r\n"]` + "\n"},
			Auditor: e.audit, Killer: noKiller{}, Requests: requests, ShareKey: []byte("0123456789abcdef0123456789abcdef"), Now: e.now})
	srv.Config.Handler = c
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e.srv = srv
	return e
}

// browserClient follows redirects and keeps cookies, trusting the test
// server's certificate.
func (e *testEnv) browserClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs user in through the dev IdP's form; it returns the last page.
func (e *testEnv) signIn(t *testing.T, hc *http.Client, user, password string) (*http.Response, string) {
	t.Helper()
	resp, err := hc.Get(e.srv.URL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	csrf := reCSRF.FindStringSubmatch(body)
	if csrf == nil {
		t.Fatalf("no IdP sign-in form: %s", body)
	}
	resp, err = hc.PostForm(resp.Request.URL.String(), url.Values{"csrf": {csrf[1]}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConsoleSignInAndSessionCookie(t *testing.T) {
	e := startConsole(t)
	hc := e.browserClient()
	resp, body := e.signIn(t, hc, "ann", "ann-pw")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="page-continue"`) {
		t.Fatalf("after sign-in: %d %s", resp.StatusCode, body)
	}
	checkHostCookie(t, resp, sessionCookie, http.SameSiteStrictMode)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval';") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if e.audit.count(EventSignIn+" ann") != 1 {
		t.Errorf("sign-in not audited: %v", e.audit.events)
	}
	resp, err := hc.Get(e.srv.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `data-session="s-1"`) {
		t.Fatalf("the sessions page does not list s-1: %s", body)
	}

	t.Run("fail/idle-expiry", func(t *testing.T) {
		e.advance(DefaultIdleTimeout + time.Second)
		resp, err := hc.Get(e.srv.URL + "/console/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="signin"`) {
			t.Fatalf("after the idle timeout: %d", resp.StatusCode)
		}
	})
}

func TestConsoleRefusesOutsideTheGroups(t *testing.T) {
	e := startConsole(t)
	hc := e.browserClient()
	resp, body := e.signIn(t, hc, "eve", "eve-pw")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "only for members of the rampart-auditors group") {
		t.Fatalf("eve: %d %s", resp.StatusCode, body)
	}
	if e.audit.count(EventSignInRefused+" eve") != 1 {
		t.Fatalf("refusal not audited: %v", e.audit.events)
	}
	resp, err := hc.Get(e.srv.URL + "/console/sessions/s-1/cast")
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("eve read a recording: %d", resp.StatusCode)
	}
}

func TestConsoleShareLinks(t *testing.T) {
	e := startConsole(t)
	hc := e.browserClient()
	e.signIn(t, hc, "ann", "ann-pw")
	resp, err := hc.Get(e.srv.URL + "/console/sessions/s-1")
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	csrf := reCSRF.FindStringSubmatch(page)[1]

	t.Run("fail/no-csrf-token", func(t *testing.T) {
		resp, err := hc.PostForm(e.srv.URL+"/console/sessions/s-1/share", url.Values{"ttl": {"24h"}})
		if err != nil {
			t.Fatal(err)
		}
		if readBody(t, resp); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a share without the CSRF token: %d", resp.StatusCode)
		}
	})
	resp, err = hc.PostForm(e.srv.URL+"/console/sessions/s-1/share", url.Values{"ttl": {"24h"}, "csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	link := resp.Request.URL.Query().Get("shared")
	if !strings.HasPrefix(link, "/console/share/") {
		t.Fatalf("no link after sharing: %s", resp.Request.URL)
	}
	anon := e.browserClient()
	get := func(path string) int {
		resp, err := anon.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		return resp.StatusCode
	}
	if got := get(link + "/cast"); got != http.StatusOK {
		t.Fatalf("the link's recording: %d", got)
	}
	if e.audit.count(EventRecordingView+" share:") != 1 {
		t.Fatalf("the use was not audited: %v", e.audit.events)
	}
	t.Run("fail/tampered", func(t *testing.T) {
		payload, sig, _ := strings.Cut(strings.TrimPrefix(link, "/console/share/"), ".")
		if got := get("/console/share/" + payload + "x." + sig + "/cast"); got != http.StatusForbidden {
			t.Fatalf("a tampered link: %d", got)
		}
	})
	t.Run("fail/revoked", func(t *testing.T) {
		m := regexp.MustCompile(`/console/shares/(sh-[^/]+)/revoke`)
		resp, _ := hc.Get(e.srv.URL + "/console/shares")
		id := m.FindStringSubmatch(readBody(t, resp))[1]
		resp, err := hc.PostForm(e.srv.URL+"/console/shares/"+id+"/revoke", url.Values{"csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if got := get(link + "/cast"); got != http.StatusForbidden {
			t.Fatalf("a revoked link: %d", got)
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		resp, err := hc.PostForm(e.srv.URL+"/console/sessions/s-1/share", url.Values{"ttl": {"1h"}, "csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		link := resp.Request.URL.Query().Get("shared")
		if got := get(link + "/cast"); got != http.StatusOK {
			t.Fatalf("a fresh link: %d", got)
		}
		e.advance(time.Hour + time.Second)
		if got := get(link + "/cast"); got != http.StatusForbidden {
			t.Fatalf("an expired link: %d", got)
		}
	})
}
