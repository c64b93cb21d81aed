//go:build !linux

package hostapply

import (
	"context"
	"errors"
)

// The host appliers run on Linux; elsewhere the package builds (for the
// pull loop and its tests) with these stand-ins.

var procUIDs func() (map[uint32]bool, error)

func killLoginUID(uint32) error { return nil }

func (h *Host) defaultReload(context.Context) error {
	if !h.realSystem {
		return nil
	}
	return errors.New("reload sshd: not supported on this system; set Config.Reload")
}
