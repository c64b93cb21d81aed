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

// memCluster is a replicated store without raft: a leader FSM that applies
// each command at the next index, and the log every node's replica replays.
// A refused command stays in the log and is refused again on replay, as in
// raft.
type memCluster struct {
	t *testing.T

	mu     sync.Mutex
	leader *raftstore.FSM
	log    [][]byte
	nodes  []*memStore
}

// memStore is one node's Store: its own replica of the cluster's FSM, which
// catches up at each Apply and ConsistentRead of the node, and at each
// mustApply unless the node lags.
type memStore struct {
	c   *memCluster
	lag bool

	mu      sync.Mutex
	replica *raftstore.FSM
	applied int
	// beforeApply runs before each Apply of this node (nil: none).
	beforeApply func(cmd raftstore.Command)
	// unknownOutcome makes Apply commit the command and then report
	// raftstore.ErrOutcomeUnknown, as when the leader is lost after a write.
	unknownOutcome bool
	applies, reads int
}

func newMemCluster(t *testing.T) *memCluster {
	t.Helper()
	return &memCluster{t: t, leader: newTestFSM(t)}
}

func newTestFSM(t *testing.T) *raftstore.FSM {
	t.Helper()
	f, err := raftstore.NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// node adds a node whose replica holds everything committed so far.
func (c *memCluster) node() *memStore {
	s := &memStore{c: c, replica: newTestFSM(c.t)}
	c.mu.Lock()
	c.nodes = append(c.nodes, s)
	c.mu.Unlock()
	s.sync()
	return s
}

// laggingNode adds a node whose replica holds nothing until it asks for a
// consistent read (a node replaying its log after a restart).
func (c *memCluster) laggingNode() *memStore {
	s := &memStore{c: c, replica: newTestFSM(c.t), lag: true}
	c.mu.Lock()
	c.nodes = append(c.nodes, s)
	c.mu.Unlock()
	return s
}

// apply commits cmd on the leader or returns its refusal.
func (c *memCluster) apply(cmd raftstore.Command) (*raftstore.Result, error) {
	buf, err := raftstore.Encode(cmd)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, buf)
	res := c.leader.ApplyCommand(uint64(len(c.log)), buf)
	if res.Err != nil {
		return nil, res.Err
	}
	return raftstore.NewResult(res.Index, res.Value)
}

// mustApply commits cmds as another node would, or fails the test; every
// node that does not lag sees them.
func (c *memCluster) mustApply(cmds ...raftstore.Command) {
	c.t.Helper()
	for _, cmd := range cmds {
		if err := cmd.Validate(); err != nil {
			c.t.Fatalf("%T does not validate: %v", cmd, err)
		}
		if _, err := c.apply(cmd); err != nil {
			c.t.Fatalf("apply %T: %v", cmd, err)
		}
	}
	c.mu.Lock()
	nodes := append([]*memStore(nil), c.nodes...)
	c.mu.Unlock()
	for _, s := range nodes {
		if !s.lag {
			s.sync()
		}
	}
}

// sync replays what the node's replica has not applied yet.
func (s *memStore) sync() {
	s.c.mu.Lock()
	log := s.c.log
	s.c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; s.applied < len(log); s.applied++ {
		s.replica.ApplyCommand(uint64(s.applied+1), log[s.applied])
	}
}

func (s *memStore) State() *raftstore.State { return s.replica.State() }

func (s *memStore) Apply(_ context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	s.mu.Lock()
	s.applies++
	hook, unknown := s.beforeApply, s.unknownOutcome
	s.mu.Unlock()
	if hook != nil {
		hook(cmd)
	}
	res, err := s.c.apply(cmd)
	s.sync()
	if err == nil && unknown {
		return nil, raftstore.ErrOutcomeUnknown
	}
	return res, err
}

func (s *memStore) ConsistentRead(ctx context.Context) error {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	s.sync()
	return ctx.Err()
}

func (s *memStore) counts() (applies, reads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies, s.reads
}

func testAuthority(t *testing.T, store Store, kek *ca.KEK, now func() time.Time) *Authority {
	t.Helper()
	return New(Config{NodeID: "n1", Store: store, KEK: kek, HostNames: testHostNames, Now: now, Logger: slog.New(slog.DiscardHandler)})
}

// testHostNames are the node's host names in these tests.
var testHostNames = []string{"bastion.example.com", "127.0.0.9"}
