package raftstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// snapshotFormat is the snapshot layout this build writes and the newest it
// reads.
const snapshotFormat = 1

// snapshotHeader is the first JSON value of a snapshot stream.
type snapshotHeader struct {
	Format int      `json:"rampart_snapshot"`
	Tables []string `json:"tables"`
	// Applied is the index of the last command the snapshot includes.
	Applied uint64 `json:"applied,omitempty"`
}

// snapshotRecord is one row of one table, or (End set) the trailer that
// closes the stream with the number of rows written, so that a stream cut at
// a record boundary is still detected.
type snapshotRecord struct {
	Table string          `json:"t,omitempty"`
	Row   json.RawMessage `json:"r,omitempty"`
	End   bool            `json:"end,omitempty"`
	Rows  int             `json:"rows,omitempty"`
}

type fsmSnapshot struct {
	tx      *memdb.Txn
	applied uint64
}

// Persist streams the header and then every row of every table.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.tx, s.applied); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.tx.Abort() }

// writeSnapshot writes every table read through tx to w.
func writeSnapshot(w io.Writer, tx *memdb.Txn, applied uint64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	names := tableNames()
	rows := 0
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Tables: names, Applied: applied}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for _, name := range names {
		it, err := tx.Get(name, "id")
		if err != nil {
			return fmt.Errorf("snapshot table %s: %w", name, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			row, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("snapshot row of %s: %w", name, err)
			}
			if err := enc.Encode(snapshotRecord{Table: name, Row: row}); err != nil {
				return fmt.Errorf("write snapshot row: %w", err)
			}
			rows++
		}
	}
	if err := enc.Encode(snapshotRecord{End: true, Rows: rows}); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	return bw.Flush()
}

// readSnapshot builds a fresh State from a snapshot stream and returns it with
// the index of the last command it includes. A snapshot from a newer format
// or naming a table this build does not know is refused whole.
func readSnapshot(r io.Reader) (*State, uint64, error) {
	st, err := NewState()
	if err != nil {
		return nil, 0, err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, 0, fmt.Errorf("restore: read snapshot header: %w", err)
	}
	if hdr.Format == 0 {
		return nil, 0, fmt.Errorf("restore: %w: not a rampart snapshot", ErrCorruptCommand)
	}
	if hdr.Format > snapshotFormat {
		return nil, 0, fmt.Errorf("restore: snapshot format %d: %w (this node reads up to %d)", hdr.Format, ErrFutureVersion, snapshotFormat)
	}
	for _, name := range hdr.Tables {
		if _, ok := tables[name]; !ok {
			return nil, 0, fmt.Errorf("restore: snapshot has table %q this version does not know: %w", name, ErrFutureVersion)
		}
	}
	tx := st.db.Txn(true)
	defer tx.Abort()
	for rows := 0; ; rows++ {
		var rec snapshotRecord
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("restore: %w: snapshot ends without its trailer (truncated after %d rows)", ErrCorruptCommand, rows)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("restore: read record: %w", err)
		}
		if rec.End {
			if rec.Rows != rows {
				return nil, 0, fmt.Errorf("restore: %w: trailer counts %d rows, stream had %d", ErrCorruptCommand, rec.Rows, rows)
			}
			break
		}
		def, ok := tables[rec.Table]
		if !ok {
			return nil, 0, fmt.Errorf("restore: record of unknown table %q: %w", rec.Table, ErrFutureVersion)
		}
		obj := def.newObj()
		if err := json.Unmarshal(rec.Row, obj); err != nil {
			return nil, 0, fmt.Errorf("restore: row of %s: %w", rec.Table, err)
		}
		if err := tx.Insert(rec.Table, obj); err != nil {
			return nil, 0, fmt.Errorf("restore: insert into %s: %w", rec.Table, err)
		}
	}
	tx.Commit()
	applied := hdr.Applied
	if applied == 0 {
		applied = st.LatestIndex()
	}
	return st, applied, nil
}

// Digest returns the SHA-256 of the state's snapshot encoding. Two replicas
// that applied the same log have the same digest, which is how tests and
// operators check that nodes agree.
func (s *State) Digest() (string, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	h := sha256.New()
	if err := writeSnapshot(h, tx, 0); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
