package raftstore

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

const tableAgentApplied = "agent_applied"

// AgentApplied is how far a server's agent has got: the raft index of the
// newest state it has applied to the server. The jump reads it on any node
// to know whether an account the cluster just created exists on the target
// yet. It is a table of its own, not a field of Server, so that its writes
// wake only those who wait for it, never every agent's long-poll (which
// watches the servers table).
type AgentApplied struct {
	ServerID string
	// Index is the highest index the agent has reported; it never moves
	// backwards (an agent restarted over a wiped data dir reports lower
	// indexes until it catches up).
	Index       uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableAgentApplied,
		newObj: func() any { return new(AgentApplied) },
		schema: &memdb.TableSchema{
			Name: tableAgentApplied,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ServerID"}},
			},
		},
	})
	registerCommand(AgentAppliedSetType, func() Command { return new(AgentAppliedSet) })
}

// AgentAppliedSet records that a server's agent has applied the state of
// Index. A report at or below the recorded index writes nothing, so that
// nobody is woken by a poll that brings no news.
type AgentAppliedSet struct {
	ServerID string
	Index    uint64
}

func (c *AgentAppliedSet) Type() MessageType { return AgentAppliedSetType }

func (c *AgentAppliedSet) Validate() error {
	if c.Index == 0 {
		return invalidf("server %s: applied index 0", c.ServerID)
	}
	return validServerID(c.ServerID)
}

func (c *AgentAppliedSet) apply(tx *writeTxn) (any, error) {
	// No agent has applied a state newer than this very entry: a report
	// past it (a forged one, or an index a long-poll answer rounded up) is
	// cut to it, so it cannot excuse the jump from waiting for changes to
	// come.
	index := min(c.Index, tx.index)
	raw, err := tx.First(tableAgentApplied, "id", c.ServerID)
	if err != nil {
		return nil, fmt.Errorf("agent of %s applied: %w", c.ServerID, err)
	}
	if raw != nil && raw.(*AgentApplied).Index >= index {
		return raw.(*AgentApplied), nil
	}
	srv, err := tx.First(tableServers, "id", c.ServerID)
	if err != nil {
		return nil, fmt.Errorf("agent of %s applied: %w", c.ServerID, err)
	}
	if srv == nil {
		return nil, fmt.Errorf("server %s: %w", c.ServerID, ErrNotFound)
	}
	a := &AgentApplied{ServerID: c.ServerID, Index: index, ModifyIndex: tx.index}
	if err := tx.Insert(tableAgentApplied, a); err != nil {
		return nil, fmt.Errorf("agent of %s applied: %w", c.ServerID, err)
	}
	return a, tx.bump(tableAgentApplied)
}

// AgentAppliedOf returns what the server's agent has reported, or nil when it
// never reported (no agent, or one older than these reports).
func (s *State) AgentAppliedOf(ws memdb.WatchSet, serverID string) (uint64, *AgentApplied, error) {
	return getOne[AgentApplied](s, ws, tableAgentApplied, "id", serverID)
}
