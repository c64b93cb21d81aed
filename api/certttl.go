package api

import (
	"fmt"
	"time"
)

// Bounds of a per-hop user certificate's lifetime, in one place: a project's
// setting is checked against them (raftstore), the CA refuses a request
// outside them (gateway/ca), and the jump mints with the default when the
// project sets none (gateway/jump).
const (
	DefaultUserCertTTL = 3 * time.Minute
	MinUserCertTTL     = 30 * time.Second
	MaxUserCertTTL     = time.Hour
)

// CheckUserCertTTL refuses a lifetime outside MinUserCertTTL..MaxUserCertTTL
// (zero included: the default is applied before, by whoever applies it). The
// message names only the value and the bounds; callers put their own sentinel
// and context in front.
func CheckUserCertTTL(d time.Duration) error {
	if d < MinUserCertTTL || d > MaxUserCertTTL {
		return fmt.Errorf("%s is outside %s..%s", d, MinUserCertTTL, MaxUserCertTTL)
	}
	return nil
}
