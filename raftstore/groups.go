package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableGroups = "groups"

// Group is a set of users, named as the IdP names it, with a fleet-stable gid.
type Group struct {
	Name string
	GID  uint32
	// SCIM is set while SCIM manages the group (created or linked by it,
	// not deleted by it since); ExternalID is the IdP's id for it.
	SCIM        bool   `json:",omitempty"`
	ExternalID  string `json:",omitempty"`
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableGroups,
		newObj: func() any { return new(Group) },
		schema: &memdb.TableSchema{
			Name: tableGroups,
			Indexes: map[string]*memdb.IndexSchema{
				"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
				"gid": {Name: "gid", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "GID"}},
			},
		},
	})
	registerCommand(GroupUpsertType, func() Command { return new(GroupUpsert) })
	registerCommand(GroupDeleteType, func() Command { return new(GroupDelete) })
}

// GroupUpsert creates a group (allocating its gid when GID is 0). A group's
// gid never changes once given; upserting an existing group is a no-op.
type GroupUpsert struct {
	Name string
	GID  uint32
	Now  time.Time
}

func (c *GroupUpsert) Type() MessageType { return GroupUpsertType }

func (c *GroupUpsert) Validate() error {
	if c.Name == "" {
		return invalidf("group name is empty")
	}
	if c.GID != 0 && c.GID < 1000 {
		return invalidf("group %s: gid %d is below 1000", c.Name, c.GID)
	}
	return nil
}

func (c *GroupUpsert) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableGroups, "id", c.Name)
	if err != nil {
		return nil, fmt.Errorf("upsert group %s: %w", c.Name, err)
	}
	if raw != nil {
		return raw.(*Group), nil
	}
	return insertGroupTxn(tx, c.Name, c.GID, c.Now)
}

// ensureGroupTxn creates group name with a fresh gid unless it exists.
func ensureGroupTxn(tx *writeTxn, name string, now time.Time) error {
	raw, err := tx.First(tableGroups, "id", name)
	if err != nil {
		return fmt.Errorf("ensure group %s: %w", name, err)
	}
	if raw != nil {
		return nil
	}
	_, err = insertGroupTxn(tx, name, 0, now)
	return err
}

func insertGroupTxn(tx *writeTxn, name string, gid uint32, now time.Time) (*Group, error) {
	if gid == 0 {
		var err error
		if gid, err = allocateGID(tx); err != nil {
			return nil, err
		}
	} else if err := checkUniqueTxn(tx, tableGroups, name, func(o any) string { return o.(*Group).Name }, "gid", gid); err != nil {
		return nil, fmt.Errorf("group %s: %w", name, err)
	}
	g := &Group{Name: name, GID: gid, CreatedAt: now, CreateIndex: tx.index, ModifyIndex: tx.index}
	if err := tx.Insert(tableGroups, g); err != nil {
		return nil, fmt.Errorf("insert group %s: %w", name, err)
	}
	return g, tx.bump(tableGroups)
}

// GroupDelete removes a group. Its gid stays retired: it is never reused.
type GroupDelete struct {
	Name string
}

func (c *GroupDelete) Type() MessageType { return GroupDeleteType }

func (c *GroupDelete) Validate() error {
	if c.Name == "" {
		return invalidf("group name is empty")
	}
	return nil
}

func (c *GroupDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableGroups, "id", c.Name)
	if err != nil {
		return nil, fmt.Errorf("delete group %s: %w", c.Name, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("group %s: %w", c.Name, ErrNotFound)
	}
	if err := tx.Delete(tableGroups, raw); err != nil {
		return nil, fmt.Errorf("delete group %s: %w", c.Name, err)
	}
	return nil, tx.bump(tableGroups)
}

// GroupByName returns the group, or nil.
func (s *State) GroupByName(ws memdb.WatchSet, name string) (uint64, *Group, error) {
	return getOne[Group](s, ws, tableGroups, "id", name)
}

// Groups lists every group by name.
func (s *State) Groups(ws memdb.WatchSet) (uint64, []*Group, error) {
	return getAll[Group](s, ws, tableGroups, "id")
}
