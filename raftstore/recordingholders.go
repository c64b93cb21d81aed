package raftstore

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableRecordingHolders = "recording_holders"

// RecordingHolder says that one node keeps a copy of one recording: the
// node that carried the session, and every node a copy was replicated to
// and checked on. A recording is replayed from any of its holders.
type RecordingHolder struct {
	// Name is the recording's name: the session id for a connection's
	// first recording, "<id>-2", ... for later ones.
	Name    string
	Session string
	Node    string
	// Path is where the node keeps it, relative to its recordings
	// directory.
	Path string
	// SHA256 and Bytes describe exactly the bytes the node holds, checked
	// there.
	SHA256 string
	Bytes  int64
	// Partial: the copy was streamed live and the stream broke before the
	// session ended (the carrying node was lost): it holds the recording up
	// to the break, and SHA256 is of what it holds.
	Partial     bool
	At          time.Time
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableRecordingHolders,
		newObj: func() any { return new(RecordingHolder) },
		schema: &memdb.TableSchema{
			Name: tableRecordingHolders,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Name"}, &memdb.StringFieldIndex{Field: "Node"},
				}}},
				"session": {Name: "session", Indexer: &memdb.StringFieldIndex{Field: "Session"}},
				"node":    {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node"}},
			},
		},
	})
	registerCommand(RecordingHolderPutType, func() Command { return new(RecordingHolderPut) })
	registerCommand(RecordingHolderDeleteType, func() Command { return new(RecordingHolderDelete) })
}

// RecordingHolderPut records that a node holds a checked copy of a
// recording, replacing what the cluster knew of that node's copy when that
// was partial (a complete copy replaces a partial one). A partial copy never
// replaces a complete one (the complete row is kept), and a complete copy
// with another digest or path is refused with ErrConflict: once a node
// holds a complete copy, only its deletion (retention) frees the row.
type RecordingHolderPut struct {
	Holder RecordingHolder
}

func (c *RecordingHolderPut) Type() MessageType { return RecordingHolderPutType }

func (c *RecordingHolderPut) Validate() error {
	h := &c.Holder
	switch {
	case h.Name == "" || h.Session == "" || h.Node == "":
		return invalidf("recording holder: name, session and node are required")
	case !filepath.IsLocal(h.Path) || filepath.Clean(h.Path) != h.Path || filepath.Ext(h.Path) != ".cast":
		return invalidf("recording %s on %s: path %q is not a relative .cast path", h.Name, h.Node, h.Path)
	case !isLowerHexSHA256(h.SHA256):
		return invalidf("recording %s on %s: digest is not 64 lower-case hex digits", h.Name, h.Node)
	case h.Bytes < 0:
		return invalidf("recording %s on %s: negative size", h.Name, h.Node)
	case h.At.IsZero():
		return invalidf("recording %s on %s: time is missing", h.Name, h.Node)
	}
	return nil
}

func (c *RecordingHolderPut) apply(tx *writeTxn) (any, error) {
	h := c.Holder
	raw, err := tx.First(tableRecordingHolders, "id", h.Name, h.Node)
	if err != nil {
		return nil, fmt.Errorf("recording %s on %s: %w", h.Name, h.Node, err)
	}
	if raw != nil {
		old := raw.(*RecordingHolder)
		if old.SHA256 == h.SHA256 && old.Path == h.Path && old.Partial == h.Partial {
			return old, nil // no-op: don't wake watchers
		}
		if !old.Partial {
			if h.Partial {
				return old, nil
			}
			return nil, fmt.Errorf("%w: node %s holds a complete copy of recording %s already", ErrConflict, h.Node, h.Name)
		}
	}
	h.At = h.At.UTC()
	h.ModifyIndex = tx.index
	if err := tx.Insert(tableRecordingHolders, &h); err != nil {
		return nil, fmt.Errorf("recording %s on %s: %w", h.Name, h.Node, err)
	}
	return &h, tx.bump(tableRecordingHolders)
}

// RecordingHolderDelete records that a node no longer holds a recording
// (retention deleted it). Deleting what is not recorded changes nothing.
type RecordingHolderDelete struct {
	Name string
	Node string
	// OnlyIfCopied refuses the deletion (ErrConflict) unless another node
	// holds a complete copy of the recording: checked where the deletions
	// of all nodes are ordered, so two nodes never both delete the last
	// two copies.
	OnlyIfCopied bool `json:",omitempty"`
}

func (c *RecordingHolderDelete) Type() MessageType { return RecordingHolderDeleteType }

func (c *RecordingHolderDelete) Validate() error {
	if c.Name == "" || c.Node == "" {
		return invalidf("recording holder: name and node are required")
	}
	return nil
}

func (c *RecordingHolderDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableRecordingHolders, "id", c.Name, c.Node)
	if err != nil {
		return nil, fmt.Errorf("recording %s on %s: %w", c.Name, c.Node, err)
	}
	if raw == nil {
		return nil, nil
	}
	if c.OnlyIfCopied {
		h := raw.(*RecordingHolder)
		it, err := tx.Get(tableRecordingHolders, "session", h.Session)
		if err != nil {
			return nil, fmt.Errorf("recording %s: %w", c.Name, err)
		}
		copied := false
		for o := it.Next(); o != nil && !copied; o = it.Next() {
			other := o.(*RecordingHolder)
			copied = other.Name == c.Name && other.Node != c.Node && !other.Partial
		}
		if !copied {
			return nil, fmt.Errorf("%w: node %s holds the only complete copy of recording %s", ErrConflict, c.Node, c.Name)
		}
	}
	if err := tx.Delete(tableRecordingHolders, raw); err != nil {
		return nil, fmt.Errorf("recording %s on %s: %w", c.Name, c.Node, err)
	}
	return nil, tx.bump(tableRecordingHolders)
}

// RecordingHoldersOf lists the holders of a session's recordings, ordered
// by recording name, then node.
func (s *State) RecordingHoldersOf(ws memdb.WatchSet, session string) (uint64, []*RecordingHolder, error) {
	return getAll[RecordingHolder](s, ws, tableRecordingHolders, "session", session)
}

// RecordingHolder returns one node's copy of a recording, or nil.
func (s *State) RecordingHolder(ws memdb.WatchSet, name, node string) (uint64, *RecordingHolder, error) {
	return getOne[RecordingHolder](s, ws, tableRecordingHolders, "id", name, node)
}

// RecordingsHeldBy lists the recordings a node holds.
func (s *State) RecordingsHeldBy(ws memdb.WatchSet, node string) (uint64, []*RecordingHolder, error) {
	return getAll[RecordingHolder](s, ws, tableRecordingHolders, "node", node)
}

// RecordingHolders lists every holder row, with the holders table's index
// (the watch fires on any change to it).
func (s *State) RecordingHolders(ws memdb.WatchSet) (uint64, []*RecordingHolder, error) {
	return getAll[RecordingHolder](s, ws, tableRecordingHolders, "id")
}
