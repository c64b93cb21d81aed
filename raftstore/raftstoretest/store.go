// Package raftstoretest is an in-memory store for tests of packages above
// raftstore: commands go straight into a real FSM, validated and applied as
// the leader would, without raft.
package raftstoretest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Store has the methods of *raftstore.Store that services above it use
// (Apply, State, FSM, CheckFresh, ConsistentRead, WaitApplied, NodeID,
// IsLeader, Leader, Status, AddNonvoter, AddVoter, RemoveServer), over one
// FSM. It is one node of a cluster that leads unless told otherwise: the
// raft configuration is this node alone unless WithMembers sets it, and
// membership calls change that configuration and are recorded, nothing more.
// The store itself is proven in raftstore and e2e. A test that needs more of
// the cluster (leadership transfer, snapshots) embeds it and adds those
// methods.
//
// Writes are serialised, as raft serialises them; it is safe for concurrent
// use.
type Store struct {
	fsm      *raftstore.FSM
	raftAddr string

	mu       sync.Mutex
	nodeID   string
	leader   bool
	stale    bool
	readErr  error
	refuse   func(raftstore.Command) error
	applied  int
	refusals int
	members  []raftstore.Member // the raft configuration; nil until New ends
	calls    []string           // membership calls, in order
}

// Option configures a Store made by New.
type Option func(*Store)

// WithNodeID names the node (default "n1").
func WithNodeID(id string) Option { return func(s *Store) { s.nodeID = id } }

// WithRaftAddr sets the raft address Leader reports (default
// "127.0.0.1:8300").
func WithRaftAddr(addr string) Option { return func(s *Store) { s.raftAddr = addr } }

// WithMembers sets the raft configuration (default: this node alone, a
// voter). Status reports it; Leader and the addresses of a node in the state
// are filled in as the real store fills them.
func WithMembers(ms ...raftstore.Member) Option {
	return func(s *Store) { s.members = append([]raftstore.Member{}, ms...) }
}

// New returns a Store over an empty state: node "n1", the leader, fresh.
func New(t testing.TB, opts ...Option) *Store {
	t.Helper()
	f, err := raftstore.NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{fsm: f, nodeID: "n1", raftAddr: "127.0.0.1:8300", leader: true}
	for _, o := range opts {
		o(s)
	}
	if s.members == nil {
		s.members = []raftstore.Member{{ID: s.nodeID, RaftAddr: s.raftAddr, Voter: true}}
	}
	return s
}

// Apply validates and encodes cmd as the leader does (raftstore.Encode),
// applies it at the next index, and returns its result; a refused command
// (invalid, a conflict, not found) returns the FSM's error and changes
// nothing. On a follower the command is applied all the same: the real store
// forwards it to the leader.
func (s *Store) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		if err := s.refuse(cmd); err != nil {
			s.refusals++
			return nil, err
		}
	}
	buf, err := raftstore.Encode(cmd)
	if err != nil {
		return nil, err
	}
	res := s.fsm.ApplyCommand(s.fsm.AppliedIndex()+1, buf)
	s.applied++
	if res.Err != nil {
		return nil, res.Err
	}
	return raftstore.NewResult(res.Index, res.Value)
}

// MustApply applies cmds in order and fails the test at the first error; it
// returns the last result.
func (s *Store) MustApply(t testing.TB, cmds ...raftstore.Command) *raftstore.Result {
	t.Helper()
	var last *raftstore.Result
	for _, c := range cmds {
		res, err := s.Apply(t.Context(), c)
		if err != nil {
			t.Fatalf("apply %T: %v", c, err)
		}
		last = res
	}
	return last
}

// State returns the current state.
func (s *Store) State() *raftstore.State { return s.fsm.State() }

// FSM returns the state machine (raftstore.BlockingQuery takes it).
func (s *Store) FSM() *raftstore.FSM { return s.fsm }

// Applied counts the commands that reached the FSM (refused ones included,
// as a raft log would hold them; those RefuseApply stopped excluded).
func (s *Store) Applied() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// RefuseApply makes Apply return refuse's error, without applying, for every
// command refuse returns one for (e.g. an audit append during an outage);
// nil removes the hook.
func (s *Store) RefuseApply(refuse func(raftstore.Command) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

// CheckFresh returns raftstore.ErrStaleRead after SetStale(true), else nil.
func (s *Store) CheckFresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale {
		return raftstore.ErrStaleRead
	}
	return nil
}

// SetStale makes CheckFresh fail (a follower out of touch with its leader).
func (s *Store) SetStale(stale bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale = stale
}

// ConsistentRead returns the error SetReadErr set, else nil: every write is
// already applied.
func (s *Store) ConsistentRead(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readErr
}

// SetReadErr makes ConsistentRead fail with err (nil: succeed).
func (s *Store) SetReadErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readErr = err
}

// WaitApplied returns at once for an index this store has applied, as the
// real store does; an index it has not reached is an error, since here
// nothing else will ever apply it.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if applied := s.fsm.AppliedIndex(); index > applied {
		return fmt.Errorf("raftstoretest: index %d is beyond the last applied, %d", index, applied)
	}
	return nil
}

// NodeID returns the node's id.
func (s *Store) NodeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeID
}

// IsLeader reports whether this node leads (true unless SetLeader(false)).
func (s *Store) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// SetLeader makes this node the leader or a follower with no known leader.
func (s *Store) SetLeader(leader bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = leader
}

// Leader returns this node's id and raft address when it leads, and empty
// strings (no known leader) when it does not.
func (s *Store) Leader() (id, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leader {
		return "", ""
	}
	return s.nodeID, s.raftAddr
}

// Status is this node's view: its raft state, the leader, the applied index
// for every index, the state's digest and the raft configuration.
func (s *Store) Status() (*raftstore.Status, error) {
	id, addr := s.Leader()
	st := s.State()
	digest, err := st.Digest()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	state := "Follower"
	if s.leader {
		state = "Leader"
	}
	idx := s.fsm.AppliedIndex()
	ms := make([]raftstore.Member, len(s.members))
	for i, m := range s.members {
		m.Leader = id != "" && m.ID == id
		if _, n, err := st.NodeByID(nil, m.ID); err == nil && n != nil {
			m.APIAddr, m.SSHAddr = n.APIAddr, n.SSHAddr
		}
		ms[i] = m
	}
	return &raftstore.Status{NodeID: s.nodeID, State: state, LeaderID: id, LeaderAddr: addr,
		LastIndex: idx, CommitIndex: idx, AppliedIndex: idx, StateDigest: digest, Members: ms}, nil
}

// AddNonvoter adds node id at addr to the configuration as a non-voter (a
// voter stays one), records "nonvoter id addr", and returns the last applied
// index: here the configuration change is at no index of its own.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) (uint64, error) {
	if err := s.member(ctx, "nonvoter", id, addr, false); err != nil {
		return 0, err
	}
	return s.fsm.AppliedIndex(), nil
}

// AddVoter adds node id at addr to the configuration as a voter, or promotes
// it, and records "voter id addr".
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.member(ctx, "voter", id, addr, true)
}

// RemoveServer removes node id from the configuration (an id not in it is no
// change, as in raft) and records "remove id".
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("%w: node id is required", raftstore.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "remove "+id)
	s.members = slices.DeleteFunc(s.members, func(m raftstore.Member) bool { return m.ID == id })
	return nil
}

func (s *Store) member(ctx context.Context, call, id, addr string, voter bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" || addr == "" {
		return fmt.Errorf("%w: node id and address are required", raftstore.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call+" "+id+" "+addr)
	for i, m := range s.members {
		if m.ID == id {
			s.members[i].RaftAddr, s.members[i].Voter = addr, m.Voter || voter
			return nil
		}
	}
	s.members = append(s.members, raftstore.Member{ID: id, RaftAddr: addr, Voter: voter})
	return nil
}

// MembershipCalls returns the membership calls made, in order: "nonvoter id
// addr", "voter id addr", "remove id".
func (s *Store) MembershipCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}
