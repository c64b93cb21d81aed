package raftstore

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-memdb"
)

const (
	// MaxBlockingWait caps how long one blocking query may hold.
	MaxBlockingWait = 10 * time.Minute
	// DefaultBlockingWait applies when the caller asks for no wait.
	DefaultBlockingWait = 5 * time.Minute
	// jitterFraction spreads the timeouts of many watchers: up to wait/16 is
	// added so that agents that all started together do not return together.
	jitterFraction = 16
)

// StateSource hands out the current generation of the state.
type StateSource interface {
	State() *State
}

// QueryFunc reads from s, adds what it read to ws, and returns the index of
// the data it read.
type QueryFunc func(ws memdb.WatchSet, s *State) (uint64, error)

// BlockingQuery runs fn until the index it returns exceeds minIndex, the wait
// (capped at MaxBlockingWait, plus jitter) runs out, or ctx ends. A restore
// wakes it through the old state's abandon channel, and fn runs again on the
// new state. With minIndex 0 it returns at once. The index returned is never
// 0, so a client that feeds it back always blocks.
func BlockingQuery(ctx context.Context, src StateSource, minIndex uint64, wait time.Duration, fn QueryFunc) (uint64, error) {
	if wait <= 0 {
		wait = DefaultBlockingWait
	}
	if wait > MaxBlockingWait {
		wait = MaxBlockingWait
	}
	wait += time.Duration(rand.Int64N(int64(wait)/jitterFraction + 1))
	tctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		s := src.State()
		ws := memdb.NewWatchSet()
		ws.Add(s.AbandonCh())
		idx, err := fn(ws, s)
		if idx < 1 {
			idx = 1
		}
		if err != nil || minIndex == 0 || idx > minIndex {
			return idx, err
		}
		if err := ws.WatchCtx(tctx); err != nil {
			if ctx.Err() != nil {
				return idx, ctx.Err()
			}
			return idx, nil
		}
	}
}
