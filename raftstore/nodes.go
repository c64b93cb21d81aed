package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableNodes = "nodes"

// Node is a bastion node of the cluster: where raft, the HTTPS API and the SSH
// front door of that node listen. Raft's own configuration says who votes;
// this table says how to reach each member for everything else.
type Node struct {
	ID          string
	RaftAddr    string
	APIAddr     string
	SSHAddr     string
	JoinedAt    time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableNodes,
		newObj: func() any { return new(Node) },
		schema: &memdb.TableSchema{
			Name: tableNodes,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
	})
	registerCommand(NodeUpsertType, func() Command { return new(NodeUpsert) })
	registerCommand(NodeDeleteType, func() Command { return new(NodeDelete) })
}

// NodeUpsert records a node's addresses.
type NodeUpsert struct {
	Node Node
	Now  time.Time
}

func (c *NodeUpsert) Type() MessageType { return NodeUpsertType }

func (c *NodeUpsert) Validate() error {
	if c.Node.ID == "" || c.Node.RaftAddr == "" {
		return invalidf("node id and raft address are required")
	}
	return nil
}

func (c *NodeUpsert) apply(tx *writeTxn) (any, error) {
	n := c.Node
	raw, err := tx.First(tableNodes, "id", n.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert node %s: %w", n.ID, err)
	}
	if raw != nil {
		old := raw.(*Node)
		if old.RaftAddr == n.RaftAddr && old.APIAddr == n.APIAddr && old.SSHAddr == n.SSHAddr {
			return old, nil
		}
		n.JoinedAt, n.CreateIndex = old.JoinedAt, old.CreateIndex
	} else {
		n.JoinedAt, n.CreateIndex = c.Now, tx.index
	}
	n.ModifyIndex = tx.index
	if err := tx.Insert(tableNodes, &n); err != nil {
		return nil, fmt.Errorf("insert node %s: %w", n.ID, err)
	}
	return &n, tx.bump(tableNodes)
}

// NodeDelete forgets a node that left or was removed.
type NodeDelete struct {
	ID string
}

func (c *NodeDelete) Type() MessageType { return NodeDeleteType }

func (c *NodeDelete) Validate() error {
	if c.ID == "" {
		return invalidf("node id is empty")
	}
	return nil
}

func (c *NodeDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableNodes, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("delete node %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, nil
	}
	if err := tx.Delete(tableNodes, raw); err != nil {
		return nil, fmt.Errorf("delete node %s: %w", c.ID, err)
	}
	return nil, tx.bump(tableNodes)
}

// NodeByID returns the node, or nil.
func (s *State) NodeByID(ws memdb.WatchSet, id string) (uint64, *Node, error) {
	return getOne[Node](s, ws, tableNodes, "id", id)
}

// Nodes lists every node by id.
func (s *State) Nodes(ws memdb.WatchSet) (uint64, []*Node, error) {
	return getAll[Node](s, ws, tableNodes, "id")
}
