package api

import (
	"strings"
	"testing"
	"time"
)

func validLoginEvent() LoginEvent {
	return LoginEvent{Seq: 1, Time: time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC), Outcome: LoginFailed, User: "alice",
		Source: "2001:db8::1", Port: 22, KeyID: "rampart user=alice@example.com session=s1", Serial: "18446744073709551615"}
}

func TestLoginEventValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(e *LoginEvent)
		want   string // "" for valid
	}{
		{"ok/valid", func(*LoginEvent) {}, ""},
		{"ok/empty-user", func(e *LoginEvent) { e.User = "" }, ""},
		{"fail/seq-zero", func(e *LoginEvent) { e.Seq = 0 }, "seq"},
		{"fail/no-time", func(e *LoginEvent) { e.Time = time.Time{} }, "time"},
		{"fail/year-10000", func(e *LoginEvent) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "out of range"},
		{"fail/outcome", func(e *LoginEvent) { e.Outcome = "maybe" }, "outcome"},
		{"fail/source-host-name", func(e *LoginEvent) { e.Source = "web-1" }, "IP address"},
		{"fail/port", func(e *LoginEvent) { e.Port = 70000 }, "port"},
		{"fail/serial-not-decimal", func(e *LoginEvent) { e.Serial = "0x10" }, "serial"},
		{"fail/serial-overflow", func(e *LoginEvent) { e.Serial = "18446744073709551616" }, "serial"},
		{"fail/control-in-user", func(e *LoginEvent) { e.User = "a\nb" }, "control"},
		{"fail/invalid-utf8", func(e *LoginEvent) { e.Reason = "\xff" }, "UTF-8"},
		{"fail/long-key-id", func(e *LoginEvent) { e.KeyID = strings.Repeat("k", MaxLoginKeyIDLen+1) }, "longer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := validLoginEvent()
			tc.change(&e)
			err := e.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLoginEventClamp: whatever a log holds, a clamped event passes the
// cluster's checks of its text.
func TestLoginEventClamp(t *testing.T) {
	e := validLoginEvent()
	e.User = "ev\x00il\xff" + strings.Repeat("ü", MaxLoginUserLen)
	e.KeyID = strings.Repeat("é", MaxLoginKeyIDLen)
	e.Reason = "line\r\nbreak\x1b[31m"
	e.Method = strings.Repeat("m", 1000)
	e.Clamp()
	if err := e.Validate(); err != nil {
		t.Fatalf("clamped event refused: %v", err)
	}
	if !strings.HasPrefix(e.User, "ev\uFFFDil\uFFFD") || len(e.User) > MaxLoginUserLen || e.Reason != "line\uFFFD\uFFFDbreak\uFFFD[31m" {
		t.Fatalf("clamped: user %q reason %q", e.User, e.Reason)
	}
	if e.Serial != "18446744073709551615" || e.Source != "2001:db8::1" {
		t.Fatalf("clamp changed untouched fields: %+v", e)
	}
}
