package raftstore

import (
	"fmt"
	"time"
)

func init() {
	registerCommand(TokenPruneType, func() Command { return new(TokenPrune) })
}

// TokenPrune deletes every token (enroll or join) whose ExpiresAt is at or
// before Before. An expired token can never be used again; the leader's
// sweep keeps it for a grace period after it expires (so that a late use is
// told "expired", and tokens ls shows it), then prunes it. Before comes in
// the command, so every replica deletes the same tokens. Its result is the
// number deleted; with none, nothing is written.
type TokenPrune struct {
	Before time.Time
}

func (c *TokenPrune) Type() MessageType { return TokenPruneType }

func (c *TokenPrune) Validate() error {
	if c.Before.IsZero() {
		return invalidf("token prune without a time")
	}
	return nil
}

func (c *TokenPrune) apply(tx *writeTxn) (any, error) {
	it, err := tx.Get(tableTokens, "id")
	if err != nil {
		return nil, fmt.Errorf("prune tokens: %w", err)
	}
	var expired []*Token
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if t := raw.(*Token); !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(c.Before) {
			expired = append(expired, t)
		}
	}
	if len(expired) == 0 {
		return 0, nil
	}
	for _, t := range expired {
		if err := tx.Delete(tableTokens, t); err != nil {
			return nil, fmt.Errorf("prune token: %w", err)
		}
	}
	return len(expired), tx.bump(tableTokens)
}
