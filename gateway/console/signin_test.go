package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSignInSealer(t *testing.T) {
	key := []byte(strings.Repeat("k", SignInKeySize))
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	si := signIn{State: "st", Verifier: "ver", Nonce: "no", Expires: now.Add(signInTTL).Unix()}
	sealed := newSignInSealer(key).seal(si)
	tests := []struct {
		name   string
		sealer *signInSealer
		value  string
		at     time.Time
		ok     bool
	}{
		{"ok/another-node-same-key", newSignInSealer(key), sealed, now, true},
		{"fail/expired", newSignInSealer(key), sealed, now.Add(signInTTL), false},
		{"fail/other-key", newSignInSealer([]byte(strings.Repeat("x", SignInKeySize))), sealed, now, false},
		{"fail/tampered", newSignInSealer(key), sealed[:len(sealed)-2] + "AA", now, false},
		{"fail/garbage", newSignInSealer(key), "not-a-cookie", now, false},
		{"fail/empty", newSignInSealer(key), "", now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.open(tt.value, tt.at)
			if tt.ok != (err == nil) {
				t.Fatalf("open: %v", err)
			}
			if tt.ok && *got != si {
				t.Fatalf("open = %+v, want %+v", *got, si)
			}
		})
	}
}

// Anonymous visitors who start sign-ins by the thousand leave the server
// nothing to hold: a real sign-in after 20,000 of them goes through.
func TestConsoleSignInStartsDoNotLockOut(t *testing.T) {
	e := startConsole(t)
	for i := range 20_000 {
		req := httptest.NewRequest(http.MethodGet, "/console/login", nil)
		req.RemoteAddr = "203.0.113.7:40000"
		rec := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("sign-in start %d: %d %s", i, rec.Code, rec.Body.String())
		}
	}
	resp, body := e.signIn(t, e.browserClient(), "ann", "ann-pw")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="page-continue"`) {
		t.Fatalf("a real sign-in after 20,000 starts: %d %s", resp.StatusCode, body)
	}
}

// checkHostCookie checks that resp sets name as a __Host- cookie: Secure,
// Path=/, no Domain, so no other service on the host name can plant it;
// HttpOnly, with site.
func checkHostCookie(t *testing.T, resp *http.Response, name string, site http.SameSite) {
	t.Helper()
	var set *http.Cookie
	for _, v := range resp.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(v); err == nil && c.Name == name && c.MaxAge >= 0 {
			set = c
		}
	}
	switch {
	case set == nil:
		t.Errorf("no %s cookie set", name)
	case !strings.HasPrefix(set.Name, "__Host-") || !set.Secure || set.Path != "/" || set.Domain != "":
		t.Errorf("%s is no __Host- cookie: %s", name, set)
	case !set.HttpOnly || set.SameSite != site:
		t.Errorf("%s: %s", name, set)
	}
}

func TestConsoleSignInCookie(t *testing.T) {
	e := startConsole(t)
	req := httptest.NewRequest(http.MethodGet, "/console/login", nil)
	rec := httptest.NewRecorder()
	e.srv.Config.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in start: %d %s", rec.Code, rec.Body.String())
	}
	checkHostCookie(t, rec.Result(), signInCookie, http.SameSiteLaxMode)
}
