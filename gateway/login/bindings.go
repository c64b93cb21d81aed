package login

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// A device-flow sign-in binds whatever key the connection presented: a
// person who approves a code someone else sent them binds that someone's
// key. These are what make such a binding visible to the person (their live
// bindings, in the greeting and `ssh bastion bindings`), undoable by them
// (Unbind), and visible to the audit (binding.flag, reason new_address).

// LiveBindings lists the user's bindings that have not expired, oldest
// first (ties by fingerprint): the order `bindings revoke N` numbers them in.
func (s *Service) LiveBindings(userID string) ([]*raftstore.Binding, error) {
	_, all, err := s.store.State().BindingsByUser(nil, userID)
	if err != nil {
		return nil, fmt.Errorf("bindings of %s: %w", userID, err)
	}
	now := s.now()
	live := make([]*raftstore.Binding, 0, len(all))
	for _, b := range all {
		if now.Before(b.ExpiresAt) {
			live = append(live, b)
		}
	}
	slices.SortFunc(live, func(a, b *raftstore.Binding) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return live, nil
}

// Unbind removes the user's own binding of the key with fingerprint fp and
// reports whether there was one. A binding of another user is never
// touched: the delete names the user, and the FSM checks it.
func (s *Service) Unbind(ctx context.Context, user *raftstore.User, fp, remote string) (bool, error) {
	res, err := s.store.Apply(ctx, &raftstore.BindingDelete{Fingerprint: fp, UserID: user.ID})
	if err != nil {
		return false, fmt.Errorf("unbind %s: %w", fp, err)
	}
	var n int
	if err := res.Decode(&n); err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	if err := s.store.WaitApplied(ctx, res.Index); err != nil {
		return true, err
	}
	s.logger.Info("binding revoked by its user", "user", user.Login, "key", fp, "remote", remote)
	if s.audit != nil {
		s.audit.Record(EventBindingRevoke, user.Login, map[string]string{"fingerprint": fp, "user_id": user.ID, "by": "self", "remote": remote})
	}
	return true, nil
}

// bindingHosts are the source hosts (without port) of the user's recorded
// bindings, live or expired: bindings are kept until revoked.
func (s *Service) bindingHosts(userID string) ([]string, error) {
	_, all, err := s.store.State().BindingsByUser(nil, userID)
	if err != nil {
		return nil, fmt.Errorf("bindings of %s: %w", userID, err)
	}
	var hosts []string
	for _, b := range all {
		if h := SourceHost(b.SourceAddr); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts, nil
}

// noteNewAddress audits a binding made from a host none of the user's
// earlier bindings came from (binding.flag, reason new_address). A person's first
// binding has nothing to compare with and is not flagged.
func (s *Service) noteNewAddress(user *raftstore.User, b *raftstore.Binding, known []string) {
	host := SourceHost(b.SourceAddr)
	if len(known) == 0 || host == "" || slices.Contains(known, host) {
		return
	}
	s.logger.Warn("key bound from an address new for this user", "user", user.Login, "key", b.Fingerprint, "remote", b.SourceAddr, "known_addrs", known)
	if s.audit != nil {
		s.audit.Record(EventBindingFlag, user.Login, map[string]string{
			"reason": "new_address", "fingerprint": b.Fingerprint, "user_id": user.ID, "remote": b.SourceAddr, "known_addrs": strings.Join(known, ","),
		})
	}
}

// SourceHost is the host part of a binding's source address ("ip:port").
func SourceHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Age is how long ago t was, rounded for people: "45s", "12m", "3h5m", "2d4h".
func Age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
