package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// What the dev IdP keeps across restarts when Config.StateFile is set: its
// live refresh tokens and the users page's changes (deactivations, groups).
// A real IdP does not forget the refresh tokens it issued when a client
// restarts; without this, a dev node's restart (which restarts its IdP)
// would make every signed-in person's next re-validation fail with
// invalid_grant, and the cluster would deactivate them all.

// savedState is the file's content.
type savedState struct {
	Refresh     []savedRefresh      `json:"refresh"`
	Deactivated []string            `json:"deactivated,omitempty"`
	Groups      map[string][]string `json:"groups,omitempty"`
}

type savedRefresh struct {
	Token    string    `json:"token"`
	ClientID string    `json:"client_id"`
	Subject  string    `json:"subject"`
	Audience []string  `json:"audience,omitempty"`
	Scopes   []string  `json:"scopes,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	AuthTime time.Time `json:"auth_time"`
	Expires  time.Time `json:"expires"`
}

// load reads the state file, if there is one. Expired tokens are dropped.
func (s *storage) load() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("devidp: read state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("devidp: state file %s: %w", s.cfg.StateFile, err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range st.Refresh {
		if now.After(r.Expires) {
			continue
		}
		s.refresh[r.Token] = &refreshToken{token: r.Token, clientID: r.ClientID, subject: r.Subject, audience: r.Audience,
			scopes: r.Scopes, amr: r.AMR, authTime: r.AuthTime, expires: r.Expires}
	}
	for _, sub := range st.Deactivated {
		s.deactivated[sub] = true
	}
	for sub, g := range st.Groups {
		s.groups[sub] = g
	}
	return nil
}

// saveLocked writes the state file (mode 0600, replaced atomically); the
// caller holds s.mu. A failure is logged, not returned: the change it
// records is made either way, and the next change writes the file again.
func (s *storage) saveLocked() {
	if s.cfg.StateFile == "" {
		return
	}
	st := savedState{Groups: s.groups}
	for _, r := range s.refresh {
		st.Refresh = append(st.Refresh, savedRefresh{Token: r.token, ClientID: r.clientID, Subject: r.subject, Audience: r.audience,
			Scopes: r.scopes, AMR: r.amr, AuthTime: r.authTime, Expires: r.expires})
	}
	for sub := range s.deactivated {
		st.Deactivated = append(st.Deactivated, sub)
	}
	b, err := json.Marshal(st)
	if err == nil {
		err = writeFileAtomic(s.cfg.StateFile, b)
	}
	if err != nil && s.logger != nil {
		s.logger.Error("dev IdP: could not save its refresh tokens; a restart will forget them", "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devidp-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
