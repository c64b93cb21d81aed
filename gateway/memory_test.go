package gateway

import "testing"

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name    string
		base    uint64
		percent int
		floor   uint64
		want    int
	}{
		{"ok/large-live-memory-keeps-the-percent", 1500 * mib, 50, 64 * mib, 50},
		{"ok/small-live-memory-gets-the-floor", 32 * mib, 50, 64 * mib, 200},
		{"ok/floor-rounds-up", 30 * mib, 50, 64 * mib, 214},
		{"ok/tiny-live-memory-capped", 1 * mib, 50, 64 * mib, 1000},
		{"ok/nothing-live-yet", 0, 50, 64 * mib, 1000},
		{"ok/no-floor", 1 * mib, 50, 0, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcPercentFor(tc.base, tc.percent, tc.floor); got != tc.want {
				t.Fatalf("gcPercentFor(%d MiB, %d, %d MiB) = %d, want %d", tc.base/mib, tc.percent, tc.floor/mib, got, tc.want)
			}
		})
	}
}
