package authority

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// memStore is a Store over a real raftstore FSM without raft: Apply encodes
// the command and applies it at the next index, as the leader's log would.
// Several memStores may share one FSM (one per node of a cluster), and hooks
// let a test hold a node's replica back or interleave another node's write.
type memStore struct {
	c *memCluster

	mu sync.Mutex
	// beforeApply runs before each Apply of this node (nil: none).
	beforeApply func(cmd raftstore.Command)
	// onConsistentRead runs at each ConsistentRead of this node (nil: none).
	onConsistentRead func()
	applies, reads   int
}

// memCluster is the replicated state the memStores share.
type memCluster struct {
	t     *testing.T
	mu    sync.Mutex
	fsm   *raftstore.FSM
	index uint64
}

func newMemCluster(t *testing.T) *memCluster {
	t.Helper()
	f, err := raftstore.NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &memCluster{t: t, fsm: f}
}

func (c *memCluster) node() *memStore { return &memStore{c: c} }

// apply commits cmd or returns the FSM's refusal.
func (c *memCluster) apply(cmd raftstore.Command) (*raftstore.Result, error) {
	buf, err := raftstore.Encode(cmd)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index++
	res := c.fsm.ApplyCommand(c.index, buf)
	if res.Err != nil {
		return nil, res.Err
	}
	return raftstore.NewResult(res.Index, res.Value)
}

// mustApply commits cmds or fails the test.
func (c *memCluster) mustApply(cmds ...raftstore.Command) {
	c.t.Helper()
	for _, cmd := range cmds {
		if _, err := c.apply(cmd); err != nil {
			c.t.Fatalf("apply %T: %v", cmd, err)
		}
	}
}

func (s *memStore) State() *raftstore.State { return s.c.fsm.State() }

func (s *memStore) Apply(_ context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	s.mu.Lock()
	s.applies++
	hook := s.beforeApply
	s.mu.Unlock()
	if hook != nil {
		hook(cmd)
	}
	return s.c.apply(cmd)
}

func (s *memStore) ConsistentRead(ctx context.Context) error {
	s.mu.Lock()
	s.reads++
	hook := s.onConsistentRead
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ctx.Err()
}

func (s *memStore) counts() (applies, reads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies, s.reads
}

func testAuthority(t *testing.T, store Store, kek *ca.KEK, now func() time.Time) *Authority {
	t.Helper()
	return New(Config{NodeID: "n1", Store: store, KEK: kek, HostNames: []string{"bastion.example.com", "127.0.0.9"}, Now: now, Logger: slog.New(slog.DiscardHandler)})
}
