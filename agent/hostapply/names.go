package hostapply

import (
	"fmt"
	"path"
	"regexp"

	"github.com/rampart-ssh/rampart/api"
)

// shellRE accepts a clean absolute path made of unremarkable characters.
var shellRE = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)

func toSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// maxID bounds uids and gids: above it, tools disagree on signedness, and
// 4294967295 is (uid_t)-1.
const maxID = 1<<31 - 1

// checkName refuses a user or group name that must not reach a file or a
// command: the cluster's unix-name rule (api.ValidUnixName, the one the
// cluster assigns names by) and this host's own reserved names.
func (h *Host) checkName(kind, name string) error {
	if err := api.ValidUnixName(name); err != nil {
		return fmt.Errorf("%w: %s name %w", ErrInvalid, kind, err)
	}
	if h.extraReserved[name] {
		return fmt.Errorf("%w: %s name %q is reserved on this host", ErrInvalid, kind, name)
	}
	return nil
}

// checkID refuses a uid or gid below MinID (root and system accounts), the
// overflow ids and anything past maxID.
func (h *Host) checkID(kind string, id uint32) error {
	switch {
	case id < h.cfg.MinID:
		return fmt.Errorf("%w: %s %d is below %d (system range)", ErrInvalid, kind, id, h.cfg.MinID)
	case id == 65534 || id == 65535:
		return fmt.Errorf("%w: %s %d is the overflow id (nobody)", ErrInvalid, kind, id)
	case id > maxID:
		return fmt.Errorf("%w: %s %d is above %d", ErrInvalid, kind, id, maxID)
	}
	return nil
}

func checkShell(sh string) error {
	if !shellRE.MatchString(sh) || path.Clean(sh) != sh {
		return fmt.Errorf("%w: shell %q is not a clean absolute path", ErrInvalid, sh)
	}
	return nil
}
