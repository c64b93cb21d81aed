package raftstore

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// getOne reads the single row of table whose index matches args. It returns
// the table's index (for blocking queries) and nil when there is no such row.
// Rows are shared with other readers: callers must copy before changing one.
func getOne[T any](s *State, ws memdb.WatchSet, table, index string, args ...any) (uint64, *T, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	ch, raw, err := tx.FirstWatch(table, index, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s by %s: %w", table, index, err)
	}
	ws.Add(ch)
	ws.Add(s.abandonCh)
	idx := maxIndexTxn(tx, ws, table)
	if raw == nil {
		return idx, nil, nil
	}
	return idx, raw.(*T), nil
}

// getAll reads every row of table whose index matches args (all rows with no
// args), in index order.
func getAll[T any](s *State, ws memdb.WatchSet, table, index string, args ...any) (uint64, []*T, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	it, err := tx.Get(table, index, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("list %s by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	ws.Add(s.abandonCh)
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return maxIndexTxn(tx, ws, table), out, nil
}

// MaxIndexWatch returns the highest index of tables and adds their index
// rows to ws, so that a blocking query wakes when any of them changes.
func (s *State) MaxIndexWatch(ws memdb.WatchSet, tables ...string) uint64 {
	tx := s.ReadTxn()
	defer tx.Abort()
	ws.Add(s.abandonCh)
	return maxIndexTxn(tx, ws, tables...)
}
