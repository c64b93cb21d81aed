package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableConsoleShares = "console_shares"

// ConsoleShareMaxTTL is the longest a share link may live.
const ConsoleShareMaxTTL = 30 * 24 * time.Hour

// ConsoleShare is a read-only link to one session's recording for someone
// without an account (the console's share links). The link itself is
// signed by the console; this record is what makes it revocable on every
// node: a link whose record is gone, revoked or expired opens nothing.
type ConsoleShare struct {
	ID        string
	Session   string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Note is what the creator said the link is for (shown in the list).
	Note      string    `json:",omitempty"`
	RevokedAt time.Time `json:",omitempty"`
	RevokedBy string    `json:",omitempty"`

	CreateIndex uint64
	ModifyIndex uint64
}

// Live reports whether the share opens its recording at now.
func (s *ConsoleShare) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

func init() {
	registerTable(tableDef{
		name:   tableConsoleShares,
		newObj: func() any { return new(ConsoleShare) },
		schema: &memdb.TableSchema{
			Name: tableConsoleShares,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"session": {Name: "session", Indexer: &memdb.StringFieldIndex{Field: "Session"}},
			},
		},
	})
	registerCommand(ConsoleShareCreateType, func() Command { return new(ConsoleShareCreate) })
	registerCommand(ConsoleShareRevokeType, func() Command { return new(ConsoleShareRevoke) })
}

// ConsoleShareCreate records a new share link.
type ConsoleShareCreate struct {
	Share ConsoleShare
	Now   time.Time
}

func (c *ConsoleShareCreate) Type() MessageType { return ConsoleShareCreateType }

func (c *ConsoleShareCreate) Validate() error {
	s := &c.Share
	switch {
	case s.ID == "":
		return invalidf("share id is empty")
	case s.Session == "":
		return invalidf("share %s: session is empty", s.ID)
	case s.CreatedBy == "":
		return invalidf("share %s: creator is empty", s.ID)
	case c.Now.IsZero():
		return invalidf("share %s: command time is missing", s.ID)
	case !s.ExpiresAt.After(c.Now):
		return invalidf("share %s: expiry is not in the future", s.ID)
	case s.ExpiresAt.Sub(c.Now) > ConsoleShareMaxTTL:
		return invalidf("share %s: a share link lives at most %s", s.ID, ConsoleShareMaxTTL)
	case len(s.Note) > 200:
		return invalidf("share %s: note is longer than 200 bytes", s.ID)
	}
	return nil
}

func (c *ConsoleShareCreate) apply(tx *writeTxn) (any, error) {
	s := c.Share
	raw, err := tx.First(tableConsoleShares, "id", s.ID)
	if err != nil {
		return nil, fmt.Errorf("create share %s: %w", s.ID, err)
	}
	if raw != nil {
		return nil, fmt.Errorf("%w: share %s exists", ErrConflict, s.ID)
	}
	sess, err := tx.First(tableSessions, "id", s.Session)
	if err != nil {
		return nil, fmt.Errorf("create share %s: %w", s.ID, err)
	}
	if sess == nil {
		return nil, fmt.Errorf("share %s: session %s: %w", s.ID, s.Session, ErrNotFound)
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt, s.RevokedBy = c.Now.UTC(), s.ExpiresAt.UTC(), time.Time{}, ""
	s.CreateIndex, s.ModifyIndex = tx.index, tx.index
	if err := tx.Insert(tableConsoleShares, &s); err != nil {
		return nil, fmt.Errorf("insert share %s: %w", s.ID, err)
	}
	return &s, tx.bump(tableConsoleShares)
}

// ConsoleShareRevoke ends a share link before its expiry. Revoking a
// revoked share changes nothing.
type ConsoleShareRevoke struct {
	ID  string
	By  string
	Now time.Time
}

func (c *ConsoleShareRevoke) Type() MessageType { return ConsoleShareRevokeType }

func (c *ConsoleShareRevoke) Validate() error {
	switch {
	case c.ID == "":
		return invalidf("share id is empty")
	case c.By == "" || c.Now.IsZero():
		return invalidf("share %s: who revokes it and when are required", c.ID)
	}
	return nil
}

func (c *ConsoleShareRevoke) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableConsoleShares, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("revoke share %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("share %s: %w", c.ID, ErrNotFound)
	}
	cur := raw.(*ConsoleShare)
	if !cur.RevokedAt.IsZero() {
		return cur, nil
	}
	s := *cur
	s.RevokedAt, s.RevokedBy, s.ModifyIndex = c.Now.UTC(), c.By, tx.index
	if err := tx.Insert(tableConsoleShares, &s); err != nil {
		return nil, fmt.Errorf("revoke share %s: %w", c.ID, err)
	}
	return &s, tx.bump(tableConsoleShares)
}

// ConsoleShareByID returns a share, or nil.
func (s *State) ConsoleShareByID(ws memdb.WatchSet, id string) (uint64, *ConsoleShare, error) {
	return getOne[ConsoleShare](s, ws, tableConsoleShares, "id", id)
}

// ConsoleShares lists every share link, ordered by id.
func (s *State) ConsoleShares(ws memdb.WatchSet) (uint64, []*ConsoleShare, error) {
	return getAll[ConsoleShare](s, ws, tableConsoleShares, "id")
}
