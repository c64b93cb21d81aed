package hostapply

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// stateVersion is the state file's format.
const stateVersion = 1

// managedState is the state file: the accounts and groups the agent created.
// It is written after every change that creates or removes one, so that a
// crash never leaves an account the agent made but does not know.
type managedState struct {
	Version int                      `json:"version"`
	Users   map[string]*managedUser  `json:"users"`
	Groups  map[string]*managedGroup `json:"groups"`
	// SSHDReloadPending: sshd's files changed but the reload failed; the
	// next pass retries it even if nothing else changes.
	SSHDReloadPending bool `json:"sshd_reload_pending,omitempty"`
}

type managedUser struct {
	UID uint32 `json:"uid"`
	// Pending: written before useradd; cleared once the account exists.
	// A pending entry found at load is confirmed only if the account has
	// the recorded uid and the Marker comment.
	Pending   bool      `json:"pending,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// DeleteAfter is when a deleted account may be removed; zero while the
	// account is not deleted.
	DeleteAfter time.Time `json:"delete_after,omitzero"`
}

type managedGroup struct {
	GID       uint32    `json:"gid"`
	Pending   bool      `json:"pending,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (h *Host) loadState() (*managedState, error) {
	st := &managedState{Version: stateVersion, Users: map[string]*managedUser{}, Groups: map[string]*managedGroup{}}
	b, err := os.ReadFile(h.path(h.cfg.StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		// Never guess: a state file that does not parse would make every
		// managed account look foreign, or worse.
		return nil, fmt.Errorf("state file %s: %w", h.cfg.StateFile, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, want %d", h.cfg.StateFile, st.Version, stateVersion)
	}
	if st.Users == nil {
		st.Users = map[string]*managedUser{}
	}
	if st.Groups == nil {
		st.Groups = map[string]*managedGroup{}
	}
	for name := range st.Users {
		if !api.IsPOSIXName(name) {
			return nil, fmt.Errorf("state file %s: user name %q is not a POSIX name", h.cfg.StateFile, name)
		}
	}
	for name := range st.Groups {
		if !api.IsPOSIXName(name) {
			return nil, fmt.Errorf("state file %s: group name %q is not a POSIX name", h.cfg.StateFile, name)
		}
	}
	return st, nil
}

func (h *Host) saveState(st *managedState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	path := h.path(h.cfg.StateFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
