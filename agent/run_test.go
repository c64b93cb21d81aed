package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/agent/hostapply"
)

func TestSettled(t *testing.T) {
	tests := []struct {
		name    string
		rep     hostapply.Report
		applied bool
	}{
		{"ok/clean", hostapply.Report{}, true},
		{"ok/one-person-refused", hostapply.Report{Problems: []hostapply.Problem{{Kind: hostapply.KindUser, Name: "alice", Err: hostapply.ErrConflict}}}, true},
		{"fail/access-withheld", hostapply.Report{
			Problems: []hostapply.Problem{{Kind: hostapply.KindSSHD, Name: "/etc/ssh/sshd_config", Err: errors.Join(hostapply.ErrRejected)}},
			Withheld: []string{"alice"},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if applied := settled(tt.rep); applied != tt.applied {
				t.Errorf("settled = %v, want %v", applied, tt.applied)
			}
		})
	}
}

// An unsettled state is tried again after a second, then twice as far off
// each time up to retryMax, and at once after a success clears it.
func TestRetrySchedule(t *testing.T) {
	var r retrySchedule
	now := time.Unix(1000, 0)
	if r.due(now) {
		t.Fatal("a zero schedule is due")
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := r.failed(now); got != w {
			t.Fatalf("failure %d: retry in %s, want %s", i+1, got, w)
		}
		if r.due(now.Add(w-time.Millisecond)) || !r.due(now.Add(w)) {
			t.Fatalf("failure %d: due before %s or not at it", i+1, w)
		}
	}
	r.settle()
	if r.due(now.Add(time.Hour)) {
		t.Fatal("a settled schedule is due")
	}
	if got := r.failed(now); got != retryFirst {
		t.Fatalf("after a success the first retry is in %s, want %s", got, retryFirst)
	}
}

func TestPullDeadline(t *testing.T) {
	a, b := time.Unix(1, 0), time.Unix(2, 0)
	for _, tt := range []struct{ x, y, want time.Time }{
		{time.Time{}, time.Time{}, time.Time{}}, {a, time.Time{}, a}, {time.Time{}, b, b}, {a, b, a}, {b, a, a},
	} {
		if got := pullDeadline(tt.x, tt.y); !got.Equal(tt.want) {
			t.Errorf("pullDeadline(%v, %v) = %v, want %v", tt.x, tt.y, got, tt.want)
		}
	}
}
