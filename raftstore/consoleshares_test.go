package raftstore

import (
	"errors"
	"testing"
	"time"
)

func TestConsoleShares(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &SessionOpen{Session: testSession("s1", "alice")})
	share := func(id string, ttl time.Duration) *ConsoleShareCreate {
		return &ConsoleShareCreate{Share: ConsoleShare{ID: id, Session: "s1", CreatedBy: "ann", ExpiresAt: testNow.Add(ttl)}, Now: testNow}
	}
	for _, tc := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"ok/create", share("sh1", 24*time.Hour), nil},
		{"ok/thirty-days", share("sh2", ConsoleShareMaxTTL), nil},
		{"fail/longer-than-thirty-days", share("sh3", ConsoleShareMaxTTL+time.Second), ErrInvalid},
		{"fail/already-expired", share("sh4", 0), ErrInvalid},
		{"fail/duplicate", share("sh1", time.Hour), ErrConflict},
		{"fail/unknown-session", &ConsoleShareCreate{Share: ConsoleShare{ID: "sh5", Session: "nope", CreatedBy: "ann", ExpiresAt: testNow.Add(time.Hour)}, Now: testNow}, ErrNotFound},
		{"ok/revoke", &ConsoleShareRevoke{ID: "sh1", By: "ann", Now: testNow.Add(time.Minute)}, nil},
		{"fail/revoke-unknown", &ConsoleShareRevoke{ID: "sh9", By: "ann", Now: testNow}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := apply(t, f, tc.cmd).Err
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	_, sh, err := f.State().ConsoleShareByID(nil, "sh1")
	if err != nil || sh == nil || sh.Live(testNow.Add(2*time.Minute)) || sh.RevokedBy != "ann" {
		t.Fatalf("revoked share %+v, %v", sh, err)
	}
	_, sh2, _ := f.State().ConsoleShareByID(nil, "sh2")
	if !sh2.Live(testNow) || sh2.Live(testNow.Add(ConsoleShareMaxTTL)) {
		t.Fatalf("share sh2 live window wrong: %+v", sh2)
	}
}
