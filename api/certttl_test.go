package api

import (
	"testing"
	"time"
)

func TestCheckUserCertTTL(t *testing.T) {
	cases := []struct {
		name string
		ttl  time.Duration
		ok   bool
	}{
		{"ok/min", MinUserCertTTL, true},
		{"ok/default", DefaultUserCertTTL, true},
		{"ok/max", MaxUserCertTTL, true},
		{"fail/below-min", MinUserCertTTL - time.Nanosecond, false},
		{"fail/above-max", MaxUserCertTTL + time.Nanosecond, false},
		{"fail/zero", 0, false},
		{"fail/negative", -time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckUserCertTTL(tc.ttl); (err == nil) != tc.ok {
				t.Fatalf("CheckUserCertTTL(%s) = %v, want ok=%v", tc.ttl, err, tc.ok)
			}
		})
	}
	// The bounds are what the admin shell and docs promise: a per-hop
	// certificate outlives a hop's setup, and none outlives an hour
	// (docs/jump.md states them).
	if MinUserCertTTL != 30*time.Second || DefaultUserCertTTL != 3*time.Minute || MaxUserCertTTL != time.Hour {
		t.Fatalf("bounds %s/%s/%s, documented 30s/3m/1h", MinUserCertTTL, DefaultUserCertTTL, MaxUserCertTTL)
	}
}
