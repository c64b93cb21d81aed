package enroll

import (
	"context"
	"log/slog"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Expired enrollment and join tokens are removed this long after they
// expire: until then a late use is told the token expired (not that it is
// unknown), and tokens ls shows it as expired.
const (
	tokenExpiryGrace = 24 * time.Hour
	tokenSweepEvery  = time.Hour
)

// SweepStore is what the token sweep needs of the replicated store.
type SweepStore interface {
	IsLeader() bool
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// TokenSweeper prunes expired tokens on the leader. Followers do nothing:
// the one TokenPrune the leader writes reaches every replica.
type TokenSweeper struct {
	store        SweepStore
	grace, every time.Duration
	now          func() time.Time
	logger       *slog.Logger
}

// NewTokenSweeper returns the sweep of a node: every hour, it prunes the
// tokens that expired more than a day ago.
func NewTokenSweeper(store SweepStore, now func() time.Time, logger *slog.Logger) *TokenSweeper {
	return &TokenSweeper{store: store, grace: tokenExpiryGrace, every: tokenSweepEvery, now: now, logger: logger}
}

// Run sweeps every hour until ctx ends.
func (s *TokenSweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("pruning expired tokens failed; will retry", "err", err)
			}
		}
	}
}

// sweep prunes, when this node leads, the tokens that expired more than
// the grace ago, and returns how many. It writes only when the replica
// holds at least one.
func (s *TokenSweeper) sweep(ctx context.Context) (int, error) {
	if !s.store.IsLeader() {
		return 0, nil
	}
	before := s.now().UTC().Add(-s.grace)
	_, toks, err := s.store.State().Tokens(nil)
	if err != nil {
		return 0, err
	}
	due := false
	for _, t := range toks {
		due = due || (!t.ExpiresAt.IsZero() && !t.ExpiresAt.After(before))
	}
	if !due {
		return 0, nil
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := s.store.Apply(actx, &raftstore.TokenPrune{Before: before})
	if err != nil {
		return 0, err
	}
	var n int
	if err := res.Decode(&n); err != nil {
		return 0, err
	}
	s.logger.Info("pruned expired tokens", "count", n, "expired_before", before)
	return n, nil
}
