package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableSessions = "sessions"

// SessionStatus is whether a session is still running.
type SessionStatus string

const (
	SessionActive SessionStatus = "active"
	SessionClosed SessionStatus = "closed"
)

// Session is one SSH session a node carried to a target server. It is opened
// when the hop is authorised and closed, with its byte counts and recording
// digest, when the last channel ends.
type Session struct {
	ID     string
	UserID string
	// Login is the unix login used on the target.
	Login      string
	ServerID   string
	Project    string
	Node       string
	SourceAddr string
	// Binding is the fingerprint of the device binding (the key) the
	// person signed in with, "" without one.
	Binding string
	// RequestID is the just-in-time access request the session was
	// opened under (accessrequests.go), "" when a group grant allowed it.
	RequestID       string `json:",omitempty"`
	Start           time.Time
	End             time.Time
	BytesIn         int64
	BytesOut        int64
	RecordingSHA256 string
	RecordingPath   string
	Status          SessionStatus
	EndReason       string
	CreateIndex     uint64
	ModifyIndex     uint64
}

func init() {
	registerTable(tableDef{
		name:   tableSessions,
		newObj: func() any { return new(Session) },
		schema: &memdb.TableSchema{
			Name: tableSessions,
			Indexes: map[string]*memdb.IndexSchema{
				"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"user":   {Name: "user", Indexer: &memdb.StringFieldIndex{Field: "UserID"}},
				"server": {Name: "server", Indexer: &memdb.StringFieldIndex{Field: "ServerID"}},
				"node":   {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node"}},
				"status": {Name: "status", Indexer: &memdb.StringFieldIndex{Field: "Status"}},
			},
		},
	})
	registerCommand(SessionOpenType, func() Command { return new(SessionOpen) })
	registerCommand(SessionCloseType, func() Command { return new(SessionClose) })
}

// SessionOpen records a new session. Its status is always stored as active,
// whatever the command says.
type SessionOpen struct {
	Session Session
}

func (c *SessionOpen) Type() MessageType { return SessionOpenType }

func (c *SessionOpen) Validate() error {
	s := &c.Session
	switch {
	case s.ID == "":
		return invalidf("session id is empty")
	case s.UserID == "" || s.Login == "":
		return invalidf("session %s: user id and login are required", s.ID)
	case s.ServerID == "":
		return invalidf("session %s: server id is empty", s.ID)
	case s.Node == "":
		return invalidf("session %s: node is empty", s.ID)
	case s.Start.IsZero():
		return invalidf("session %s: start time is missing", s.ID)
	case s.BytesIn < 0 || s.BytesOut < 0:
		return invalidf("session %s: negative byte count", s.ID)
	}
	return nil
}

func (c *SessionOpen) apply(tx *writeTxn) (any, error) {
	s := c.Session
	raw, err := tx.First(tableSessions, "id", s.ID)
	if err != nil {
		return nil, fmt.Errorf("open session %s: %w", s.ID, err)
	}
	if raw != nil {
		return nil, fmt.Errorf("%w: session %s already exists", ErrConflict, s.ID)
	}
	s.Status = SessionActive
	s.Start, s.End = s.Start.UTC(), s.End.UTC()
	s.CreateIndex, s.ModifyIndex = tx.index, tx.index
	if err := tx.Insert(tableSessions, &s); err != nil {
		return nil, fmt.Errorf("insert session %s: %w", s.ID, err)
	}
	return &s, tx.bump(tableSessions)
}

// SessionClose marks a session closed with its final counters. Closing a
// closed session changes nothing (a node may retry after a lost reply). An
// End before Start (clocks of two nodes) is stored as Start.
type SessionClose struct {
	ID              string
	End             time.Time
	BytesIn         int64
	BytesOut        int64
	RecordingSHA256 string
	// RecordingPath is where the node that carried the session keeps its
	// recording (relative to that node's recordings directory).
	RecordingPath string
	EndReason     string
}

func (c *SessionClose) Type() MessageType { return SessionCloseType }

func (c *SessionClose) Validate() error {
	switch {
	case c.ID == "":
		return invalidf("session id is empty")
	case c.End.IsZero():
		return invalidf("session %s: end time is missing", c.ID)
	case c.BytesIn < 0 || c.BytesOut < 0:
		return invalidf("session %s: negative byte count", c.ID)
	case c.RecordingSHA256 != "" && !isLowerHexSHA256(c.RecordingSHA256):
		return invalidf("session %s: recording digest is not 64 lower-case hex digits", c.ID)
	}
	return nil
}

func (c *SessionClose) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableSessions, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("close session %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("session %s: %w", c.ID, ErrNotFound)
	}
	old := raw.(*Session)
	s := *old
	if old.Status == SessionClosed {
		// Closed already (an administrator ended it): the first close keeps
		// its end time and reason, and the node that carried the session
		// still fills in what only it knows, once.
		if old.BytesIn != 0 || old.BytesOut != 0 || old.RecordingSHA256 != "" ||
			(c.BytesIn == 0 && c.BytesOut == 0 && c.RecordingSHA256 == "") {
			return old, nil // no-op: don't wake watchers
		}
		s.BytesIn, s.BytesOut = c.BytesIn, c.BytesOut
		s.RecordingSHA256, s.RecordingPath = c.RecordingSHA256, c.RecordingPath
	} else {
		s.Status, s.End = SessionClosed, c.End.UTC()
		if s.End.Before(s.Start) {
			s.End = s.Start
		}
		s.BytesIn, s.BytesOut = c.BytesIn, c.BytesOut
		s.RecordingSHA256, s.RecordingPath, s.EndReason = c.RecordingSHA256, c.RecordingPath, c.EndReason
	}
	s.ModifyIndex = tx.index
	if err := tx.Insert(tableSessions, &s); err != nil {
		return nil, fmt.Errorf("update session %s: %w", c.ID, err)
	}
	if old.Status != SessionClosed {
		return &s, tx.bump(tableSessions, SessionsClosedIndex(s.Node))
	}
	return &s, tx.bump(tableSessions)
}

// SessionsClosedIndex names the index row that changes whenever a session
// the node carries is closed (by the node itself or by an administrator's
// kill). A node watches its own to notice kills, without waking on every
// session opened or closed elsewhere in the cluster.
func SessionsClosedIndex(node string) string { return "sessions-closed/" + node }

// isLowerHexSHA256 reports whether s is a SHA-256 digest written as 64
// lower-case hex digits, the one spelling stored anywhere in the state.
func isLowerHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// SessionByID returns the session, or nil.
func (s *State) SessionByID(ws memdb.WatchSet, id string) (uint64, *Session, error) {
	return getOne[Session](s, ws, tableSessions, "id", id)
}

// ClosedSessions returns which of ids name a closed session record, read in
// one transaction (nil when none is closed).
func (s *State) ClosedSessions(ids []string) map[string]bool {
	tx := s.ReadTxn()
	defer tx.Abort()
	var closed map[string]bool
	for _, id := range ids {
		raw, err := tx.First(tableSessions, "id", id)
		if err != nil || raw == nil || raw.(*Session).Status != SessionClosed {
			continue
		}
		if closed == nil {
			closed = map[string]bool{}
		}
		closed[id] = true
	}
	return closed
}

// Sessions lists every session, ordered by id.
func (s *State) Sessions(ws memdb.WatchSet) (uint64, []*Session, error) {
	return getAll[Session](s, ws, tableSessions, "id")
}

// ActiveSessions lists the sessions not closed yet.
func (s *State) ActiveSessions(ws memdb.WatchSet) (uint64, []*Session, error) {
	return getAll[Session](s, ws, tableSessions, "status", string(SessionActive))
}

// SessionsByUser lists a user's sessions, open and closed.
func (s *State) SessionsByUser(ws memdb.WatchSet, userID string) (uint64, []*Session, error) {
	return getAll[Session](s, ws, tableSessions, "user", userID)
}

// SessionsByServer lists the sessions to one server, open and closed.
func (s *State) SessionsByServer(ws memdb.WatchSet, serverID string) (uint64, []*Session, error) {
	return getAll[Session](s, ws, tableSessions, "server", serverID)
}

// SessionsByNode lists the sessions a node carried, open and closed (the
// sessions to close when that node is gone).
func (s *State) SessionsByNode(ws memdb.WatchSet, node string) (uint64, []*Session, error) {
	return getAll[Session](s, ws, tableSessions, "node", node)
}
