package raftstore

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// State is one generation of the in-memory database. A restore builds a new
// State and abandons the old one: AbandonCh closes so that blocking queries
// holding the old generation return and re-read from the new one.
type State struct {
	db        *memdb.MemDB
	abandonCh chan struct{}
}

// NewState returns an empty state holding every registered table.
func NewState() (*State, error) {
	db, err := memdb.NewMemDB(dbSchema())
	if err != nil {
		return nil, fmt.Errorf("create memdb: %w", err)
	}
	return &State{db: db, abandonCh: make(chan struct{})}, nil
}

// AbandonCh is closed when this generation is replaced by a restore.
func (s *State) AbandonCh() <-chan struct{} { return s.abandonCh }

func (s *State) abandon() { close(s.abandonCh) }

// ReadTxn opens a read-only transaction on this generation.
func (s *State) ReadTxn() *memdb.Txn { return s.db.Txn(false) }

// writeTxn is the FSM's write transaction for one raft log index.
type writeTxn struct {
	*memdb.Txn
	// index is the raft index of the command being applied.
	index uint64
}

// newWriteTxn opens a write transaction that stamps index on what it changes.
func (s *State) newWriteTxn(index uint64) *writeTxn {
	return &writeTxn{Txn: s.db.Txn(true), index: index}
}

// bump records that tables changed at this transaction's index.
func (tx *writeTxn) bump(tables ...string) error {
	for _, t := range tables {
		if err := tx.Insert(tableIndex, &IndexEntry{Key: t, Value: tx.index}); err != nil {
			return fmt.Errorf("bump index of %s: %w", t, err)
		}
	}
	return nil
}

// IndexEntry is a row of the index table: the raft index at which a table
// last changed.
type IndexEntry struct {
	Key   string
	Value uint64
}

const tableIndex = "index"

func init() {
	registerTable(tableDef{
		name:   tableIndex,
		newObj: func() any { return new(IndexEntry) },
		schema: &memdb.TableSchema{
			Name: tableIndex,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	})
}

// maxIndexTxn returns the highest index at which any of tables changed, and
// adds the watch channels of their index rows to ws (when ws is not nil).
func maxIndexTxn(tx *memdb.Txn, ws memdb.WatchSet, tables ...string) uint64 {
	var max uint64
	for _, t := range tables {
		ch, raw, err := tx.FirstWatch(tableIndex, "id", t)
		if err != nil {
			continue
		}
		ws.Add(ch)
		if e, ok := raw.(*IndexEntry); ok && e.Value > max {
			max = e.Value
		}
	}
	return max
}

// MaxIndex returns the highest index at which any of tables changed.
func (s *State) MaxIndex(tables ...string) uint64 {
	tx := s.ReadTxn()
	defer tx.Abort()
	return maxIndexTxn(tx, nil, tables...)
}

// LatestIndex returns the highest index of any table.
func (s *State) LatestIndex() uint64 {
	tx := s.ReadTxn()
	defer tx.Abort()
	it, err := tx.Get(tableIndex, "id")
	if err != nil {
		return 0
	}
	var max uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if e := raw.(*IndexEntry); e.Value > max {
			max = e.Value
		}
	}
	return max
}
