package hostapply

import (
	"context"
	"errors"
	"strconv"
)

// defaultKillUser kills every process of uid: pkill by effective and by
// real uid, and on Linux (real system only) every process whose audit login
// uid is uid, which catches what the user started through sudo.
func (h *Host) defaultKillUser(ctx context.Context, uid uint32) error {
	id := strconv.FormatUint(uint64(uid), 10)
	var errs []error
	for _, flag := range []string{"-u", "-U"} {
		// pkill exits 1 when nothing matched.
		if _, err := h.run.Run(ctx, []string{"pkill", "-KILL", flag, id}); err != nil && exitCode(err) != 1 {
			errs = append(errs, err)
		}
	}
	if h.realSystem {
		errs = append(errs, killLoginUID(uid))
	}
	return errors.Join(errs...)
}
