package access

import (
	"fmt"
	"slices"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Just-in-time access: an approved request is a grant for its person alone,
// on its project, for the login it names, until its window ends. The window
// is read from the replicated record and compared with this node's clock,
// so every node refuses once it has passed, whether or not the leader has
// written the expiry yet.

// NeedRequestError refuses a person who has no grant in a project that
// takes requests from them: the jump tells them how to ask.
type NeedRequestError struct {
	Server, Project string
	// MaxDuration is the longest the project grants.
	MaxDuration time.Duration
}

func (e *NeedRequestError) Error() string {
	return fmt.Sprintf("no access to %s (project %s)", e.Server, e.Project)
}

// Unwrap makes it a refusal for lack of a grant.
func (e *NeedRequestError) Unwrap() error { return ErrNotInProject }

// SuggestedDuration is the --for the refusal suggests: 2h, or the
// project's maximum when that is shorter.
func (e *NeedRequestError) SuggestedDuration() string {
	d := min(2*time.Hour, e.MaxDuration)
	if d <= 0 {
		d = 2 * time.Hour
	}
	return shortDuration(d)
}

// shortDuration writes 2h, 90m, 45s rather than 2h0m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// activeRequests are user's requests that grant access at now, for project
// ("" any), latest expiry first.
func (e *Evaluator) activeRequests(user *raftstore.User, project string) ([]*raftstore.AccessRequest, error) {
	_, reqs, err := e.st.AccessRequestsByUser(nil, user.ID)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out []*raftstore.AccessRequest
	for _, r := range reqs {
		if r.ActiveAt(now) && (project == "" || r.Project == project) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *raftstore.AccessRequest) int { return b.ExpiresAt.Compare(a.ExpiresAt) })
	return out, nil
}

// needRequest is the refusal of user on srv's project when they hold no
// grant there: one that says how to ask when the project takes requests
// from them.
func needRequest(user *raftstore.User, server string, p *raftstore.Project) error {
	if p == nil || p.Settings.Requests == nil || !p.Settings.Requests.MayRequest(user.Groups) {
		return nil
	}
	return &NeedRequestError{Server: server, Project: p.Name, MaxDuration: p.Settings.Requests.EffectiveMaxDuration()}
}

// RequestFor is the request a login on the project's servers is allowed
// under, or nil when a group grant allows it (or nothing does). Of several,
// the one that lasts longest.
func (a *Access) RequestFor(user *raftstore.User, login string) *raftstore.AccessRequest {
	if len(a.Grants) > 0 {
		return nil
	}
	for _, r := range a.Requests {
		if r.Login == login {
			return r
		}
	}
	return nil
}
