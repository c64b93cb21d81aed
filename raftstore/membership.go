package raftstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hashicorp/raft"
	"github.com/rampart-ssh/rampart/api"
)

// Member is one server of the raft configuration, joined with what the nodes
// table knows of it (the API's wire type: api.ClusterMember).
type Member = api.ClusterMember

// Status is a node's view of the cluster, as GET /v1/cluster/status gives
// it (api.ClusterStatus).
type Status = api.ClusterStatus

// Members lists the raft configuration.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", translateRaftErr(err))
	}
	leaderID, _ := s.Leader()
	st := s.State()
	var out []Member
	for _, srv := range f.Configuration().Servers {
		m := Member{ID: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == leaderID}
		if _, n, err := st.NodeByID(nil, m.ID); err == nil && n != nil {
			m.APIAddr, m.SSHAddr = n.APIAddr, n.SSHAddr
		}
		out = append(out, m)
	}
	return out, nil
}

// Status reports this node's view: its raft state, the leader, indexes and
// members.
func (s *Store) Status() (*Status, error) {
	members, err := s.Members()
	if err != nil {
		return nil, err
	}
	leaderID, leaderAddr := s.Leader()
	digest, err := s.State().Digest()
	if err != nil {
		return nil, err
	}
	stats := s.raft.Stats()
	term, _ := strconv.ParseUint(stats["term"], 10, 64)
	return &Status{
		NodeID: s.cfg.NodeID, State: s.raft.State().String(), LeaderID: leaderID, LeaderAddr: leaderAddr,
		Term: term, LastIndex: s.raft.LastIndex(), CommitIndex: s.raft.CommitIndex(), AppliedIndex: s.raft.AppliedIndex(),
		StateDigest: digest, Members: members,
	}, nil
}

// AddVoter adds a node to the cluster (on the leader, forwarded from
// elsewhere). It returns once the new configuration is committed, which needs
// the new node to be up when the cluster has one or two members.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.withLeader(ctx, true, func() error { return s.addVoterLocal(id, addr) }, func(leader string) error {
		_, err := s.forwarder.call(leader, "AddVoter", &ForwardArgs{ID: id, Addr: addr})
		return err
	})
}

func (s *Store) addVoterLocal(id, addr string) error {
	if id == "" || addr == "" {
		return invalidf("node id and address are required to add a voter")
	}
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("add voter %s: %w", id, translateRaftErr(err))
	}
	return nil
}

// AddNonvoter adds a node that receives the log but does not vote, and
// returns the index of that configuration change. A joining node waits until
// it has applied that index (which proves the leader reaches it) before it
// asks to become a voter, so a node the leader cannot reach never becomes a
// voter that the quorum would then count on.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) (uint64, error) {
	var idx uint64
	err := s.withLeader(ctx, true, func() error {
		var err error
		idx, err = s.addNonvoterLocal(id, addr)
		return err
	}, func(leader string) error {
		reply, err := s.forwarder.call(leader, "AddNonvoter", &ForwardArgs{ID: id, Addr: addr})
		if err == nil {
			idx = reply.Index
		}
		return err
	})
	return idx, err
}

func (s *Store) addNonvoterLocal(id, addr string) (uint64, error) {
	if id == "" || addr == "" {
		return 0, invalidf("node id and address are required to add a node")
	}
	f := s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("add non-voter %s: %w", id, translateRaftErr(err))
	}
	return f.Index(), nil
}

// RaftAppliedIndex is the index raft has applied on this node, configuration
// changes included.
func (s *Store) RaftAppliedIndex() uint64 { return s.raft.AppliedIndex() }

// RemoveServer removes a node from the cluster.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	return s.withLeader(ctx, true, func() error { return s.removeServerLocal(id) }, func(leader string) error {
		_, err := s.forwarder.call(leader, "RemoveServer", &ForwardArgs{ID: id})
		return err
	})
}

func (s *Store) removeServerLocal(id string) error {
	if id == "" {
		return invalidf("node id is required")
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, translateRaftErr(err))
	}
	return nil
}

// TransferLeadership asks the leader (this node) to hand over to another voter.
func (s *Store) TransferLeadership() error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", translateRaftErr(err))
	}
	return nil
}

// Snapshot forces a raft snapshot now.
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", translateRaftErr(err))
	}
	return nil
}
