package raftstore

import (
	"crypto"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableNodes = "nodes"

// Node is a bastion node of the cluster: where raft, the HTTPS API and the SSH
// front door of that node listen. Raft's own configuration says who votes;
// this table says how to reach each member for everything else.
type Node struct {
	ID       string
	RaftAddr string
	APIAddr  string
	SSHAddr  string
	// KeyHash is HashNodeKey of the public key of the node's TLS
	// certificate, recorded when the node joins (or bootstraps). Only a
	// certificate for this key speaks for the node: a certificate of an
	// earlier node of the same id (removed, then joined again) is refused,
	// however long it is still valid. Renewal keeps the key. Empty for a
	// node recorded before keys were: each node records its own at its next
	// start.
	KeyHash string `json:",omitempty"`
	// HostNames are the names and addresses the node's front door host
	// certificate is for (what users type to reach it), as the node
	// records them at start. Enrollment refuses them to targets.
	HostNames   []string `json:",omitempty"`
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

// HashNodeKey is how a node's key is recorded: the hex SHA-256 of the public
// key's PKIX DER encoding, as for agent keys.
func HashNodeKey(pub crypto.PublicKey) (string, error) { return HashAgentKey(pub) }

// HoldsKey reports whether a certificate for pub speaks for the node: its
// key is the one recorded at join, or none was recorded (a node from before
// keys were; it records its own at its next start).
func (n *Node) HoldsKey(pub crypto.PublicKey) bool {
	if n.KeyHash == "" {
		return true
	}
	h, err := HashNodeKey(pub)
	return err == nil && h == n.KeyHash
}

// NodeUpsert records a node's addresses, and its key and host names when
// Node.KeyHash and Node.HostNames are set; an upsert without them keeps the
// recorded ones.
type NodeUpsert struct {
	Node Node
	// Existing makes it an update of a recorded node only: a node removed
	// while the write was on its way is not brought back (ErrNotFound). A
	// node's own updates of its record (its key, its host names) set it.
	Existing bool `json:",omitempty"`
	Now      time.Time
}

func (c *NodeUpsert) Type() MessageType { return NodeUpsertType }

func (c *NodeUpsert) Validate() error {
	if c.Node.ID == "" || c.Node.RaftAddr == "" {
		return invalidf("node id and raft address are required")
	}
	if len(c.Node.HostNames) > maxAltNames {
		return invalidf("node %s: more than %d host names", c.Node.ID, maxAltNames)
	}
	for _, h := range c.Node.HostNames {
		if !validHostOrIP(h) {
			return invalidf("node %s: host name %q is neither a DNS-style name nor an IP address", c.Node.ID, h)
		}
	}
	if c.Node.KeyHash != "" {
		if err := validAgentKeyHash("node key hash", c.Node.KeyHash); err != nil {
			return fmt.Errorf("node %s: %w", c.Node.ID, err)
		}
	}
	return nil
}

func (c *NodeUpsert) apply(tx *writeTxn) (any, error) {
	n := c.Node
	raw, err := tx.First(tableNodes, "id", n.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert node %s: %w", n.ID, err)
	}
	if raw == nil && c.Existing {
		return nil, fmt.Errorf("node %s: %w (removed from the cluster)", n.ID, ErrNotFound)
	}
	if raw != nil {
		old := raw.(*Node)
		switch {
		case n.KeyHash == "":
			n.KeyHash = old.KeyHash
		case old.KeyHash != "" && n.KeyHash != old.KeyHash:
			// A node's key is recorded once: two joins of one id racing
			// (each saw it free) must not let the second replace the
			// first's key. A node with a new key is removed and joins again.
			return nil, fmt.Errorf("%w: node %s is recorded with another key; remove it before it joins again", ErrConflict, n.ID)
		}
		if n.HostNames == nil {
			n.HostNames = old.HostNames
		}
		if old.RaftAddr == n.RaftAddr && old.APIAddr == n.APIAddr && old.SSHAddr == n.SSHAddr && old.KeyHash == n.KeyHash &&
			slices.Equal(old.HostNames, n.HostNames) {
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
