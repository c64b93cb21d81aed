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
		again   time.Duration
	}{
		{"ok/clean", hostapply.Report{}, true, reconcileEvery},
		{"ok/one-person-refused", hostapply.Report{Problems: []hostapply.Problem{{Kind: hostapply.KindUser, Name: "alice", Err: hostapply.ErrConflict}}}, true, reconcileEvery},
		{"fail/access-withheld", hostapply.Report{
			Problems: []hostapply.Problem{{Kind: hostapply.KindSSHD, Name: "/etc/ssh/sshd_config", Err: errors.Join(hostapply.ErrRejected)}},
			Withheld: []string{"alice"},
		}, false, retryWithheld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applied, again := settled(tt.rep)
			if applied != tt.applied || again != tt.again {
				t.Errorf("settled = %v, %v; want %v, %v", applied, again, tt.applied, tt.again)
			}
		})
	}
}
