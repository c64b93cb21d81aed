package api

import (
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		start, end time.Time
		want       time.Time
	}{
		{"ok/90-days", t0, t0.Add(90 * 24 * time.Hour), t0.Add(60 * 24 * time.Hour)},
		{"ok/20-seconds", t0, t0.Add(21 * time.Second), t0.Add(14 * time.Second)},
		{"ok/two-years", t0, t0.Add(2 * 365 * 24 * time.Hour), t0.Add(2 * 365 * 24 * time.Hour * 2 / 3)},
		{"edge/received-after-expiry", t0.Add(time.Hour), t0, t0},
		{"edge/received-at-expiry", t0, t0, t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewAt(tc.start, tc.end); !got.Equal(tc.want) {
				t.Errorf("RenewAt(%s, %s) = %s, want %s", tc.start, tc.end, got, tc.want)
			}
		})
	}
}
