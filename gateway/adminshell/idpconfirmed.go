package adminshell

import (
	"fmt"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// idpConfirmed says, for `users show`, when the identity provider last
// vouched for the person (their sign-in, or the last re-validation that
// refreshed their token) and how re-validation has gone since.
func idpConfirmed(st *raftstore.State, userID string, now time.Time) string {
	_, rec, err := st.IdPSessionByUser(nil, userID)
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case rec == nil:
		return "- (no refresh token kept: binding_ttl bounds their bindings)"
	}
	s := fmt.Sprintf("%s (%s ago)", rec.ConfirmedAt.UTC().Format(time.RFC3339), now.Sub(rec.ConfirmedAt).Round(time.Second))
	if rec.Failures > 0 {
		s += fmt.Sprintf("; %d failed since, last: %s", rec.Failures, rec.LastFailure)
	}
	return s
}
