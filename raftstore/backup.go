package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// ErrHasState refuses to restore into a raft directory that already holds a
// node's log or snapshots; ErrNoState refuses to recover one that holds none.
var (
	ErrHasState = errors.New("the raft directory already holds a node's state")
	ErrNoState  = errors.New("the raft directory holds no state to recover")
)

// Backup is a raft snapshot of this node's replica, taken for a backup.
type Backup struct {
	// Node is the node whose replica it is.
	Node string
	// Index and Term are the raft index and term the snapshot was taken at:
	// it holds every change committed up to Index.
	Index, Term uint64
	// Size is the snapshot's length in bytes.
	Size int64
	// Open returns a reader of the snapshot; it may be called more than
	// once.
	Open func() (io.ReadCloser, error)
}

// TakeBackup makes this replica hold every change the cluster had committed
// when it was called (ConsistentRead, which needs a leader), then has raft
// snapshot it: the snapshot is the state machine at one raft index, taken
// while writes go on, and the same one raft keeps to compact its log.
func (s *Store) TakeBackup(ctx context.Context) (*Backup, error) {
	if err := s.ConsistentRead(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	for {
		f := s.raft.Snapshot()
		err := f.Error()
		if err == nil {
			meta, rc, err := f.Open()
			if err != nil {
				return nil, fmt.Errorf("backup: open the snapshot: %w", err)
			}
			rc.Close()
			// The future opens once; the store opens by id as often as
			// asked (raft keeps the last few snapshots).
			id := meta.ID
			return &Backup{Node: s.cfg.NodeID, Index: meta.Index, Term: meta.Term, Size: meta.Size, Open: func() (io.ReadCloser, error) {
				_, rc, err := s.snaps.Open(id)
				if err != nil {
					return nil, fmt.Errorf("open the backup snapshot: %w", err)
				}
				return rc, nil
			}}, nil
		}
		// Raft refuses while a configuration change is committed but not
		// yet applied here; that passes in a moment.
		if !strings.Contains(err.Error(), "cannot take snapshot now") {
			return nil, fmt.Errorf("backup: %w", translateRaftErr(err))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("backup: %w (%v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Seed is what RestoreBackup and Recover need to leave a raft directory that
// starts as a one-node cluster.
type Seed struct {
	// Dir is the node's raft directory (Config.Dir).
	Dir string
	// NodeID and RaftAddr are the only voter of the new configuration.
	NodeID, RaftAddr string
	// Edit returns the commands that make the state this node's (forget the
	// other nodes, record this one...). They are applied in order after the
	// state, before raft starts; an error, or a command refused, stops with
	// nothing written.
	Edit func(st *State) ([]Command, error)
	// Logger may be nil (discard).
	Logger *slog.Logger
}

func (sd *Seed) hclog() hclog.Logger {
	logger := sd.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return hclog.FromStandardLogger(slog.NewLogLogger(logger.Handler(), slog.LevelInfo), &hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
}

func (sd *Seed) configuration() raft.Configuration {
	return raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(sd.NodeID), Address: raft.ServerAddress(sd.RaftAddr),
	}}}
}

// openDir opens the raft log and the snapshot store of sd.Dir.
func (sd *Seed) openDir() (*raftboltdb.BoltStore, raft.SnapshotStore, error) {
	if sd.NodeID == "" || sd.Dir == "" || sd.RaftAddr == "" || sd.Edit == nil {
		return nil, nil, errors.New("raftstore: node id, dir, raft address and Edit are required")
	}
	if err := os.MkdirAll(sd.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("raft dir: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(sd.Dir, "raft.db")})
	if err != nil {
		return nil, nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(sd.Dir, 3, sd.hclog())
	if err != nil {
		bolt.Close()
		return nil, nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return bolt, snaps, nil
}

// RestoreBackup makes an empty raft directory start as a new one-node
// cluster holding a backup's state: it reads the state machine snapshot,
// applies sd.Edit's commands after index (the backup's raft index), and
// writes the result as a raft snapshot whose configuration has this node as
// its only voter. The new cluster's raft terms start again from 1; its
// indexes go on from the backup's. It returns the snapshot's index.
func RestoreBackup(sd Seed, index uint64, snapshot io.Reader) (uint64, error) {
	bolt, snaps, err := sd.openDir()
	if err != nil {
		return 0, err
	}
	defer bolt.Close()
	has, err := raft.HasExistingState(bolt, bolt, snaps)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if has {
		return 0, fmt.Errorf("restore: %w (%s)", ErrHasState, sd.Dir)
	}
	fsm, err := NewFSM(sd.Logger)
	if err != nil {
		return 0, err
	}
	if err := fsm.Restore(io.NopCloser(snapshot)); err != nil {
		return 0, err
	}
	if _, m, err := fsm.State().Meta(nil); err != nil || m.ClusterID == "" {
		return 0, fmt.Errorf("restore: %w: the snapshot holds no cluster", ErrCorruptCommand)
	}
	index = max(index, fsm.AppliedIndex())
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	return sd.write(snaps, trans, fsm, index, 1)
}

// Recover makes a node that has lost its quorum a one-node cluster with all
// of its data (raft.RecoverCluster: the latest snapshot and every entry of
// its log applied, the configuration replaced by this node alone), then
// applies sd.Edit's commands and writes the result as the latest snapshot.
// The node must not be running. It returns the snapshot's index.
func Recover(sd Seed) (uint64, error) {
	bolt, snaps, err := sd.openDir()
	if err != nil {
		return 0, err
	}
	defer bolt.Close()
	has, err := raft.HasExistingState(bolt, bolt, snaps)
	if err != nil {
		return 0, fmt.Errorf("recover: %w", err)
	}
	if !has {
		return 0, fmt.Errorf("recover: %w (%s)", ErrNoState, sd.Dir)
	}
	fsm, err := NewFSM(sd.Logger)
	if err != nil {
		return 0, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(sd.NodeID)
	rc.Logger = sd.hclog()
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	if err := raft.RecoverCluster(rc, fsm, bolt, bolt, snaps, trans, sd.configuration()); err != nil {
		return 0, fmt.Errorf("recover: %w", err)
	}
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return 0, fmt.Errorf("recover: the snapshot raft wrote is missing: %v", err)
	}
	// The state machine holds what that snapshot holds; its term is the
	// log's, which the stored current term is not below.
	return sd.write(snaps, trans, fsm, metas[0].Index, metas[0].Term)
}

// write applies sd.Edit's commands to fsm after index and saves the state as
// a snapshot at the index of the last of them, in term, with sd's node as
// the only voter. trans is only there for raft to encode the configuration
// in its legacy form too.
func (sd *Seed) write(snaps raft.SnapshotStore, trans raft.Transport, fsm *FSM, index, term uint64) (uint64, error) {
	cmds, err := sd.Edit(fsm.State())
	if err != nil {
		return 0, err
	}
	for _, cmd := range cmds {
		buf, err := Encode(cmd)
		if err != nil {
			return 0, err
		}
		index++
		if r := fsm.ApplyCommand(index, buf); r.Err != nil {
			return 0, fmt.Errorf("apply %T: %w", cmd, r.Err)
		}
	}
	fsm.applied.Store(index)
	snap, err := fsm.Snapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Release()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, sd.configuration(), index, trans)
	if err != nil {
		return 0, fmt.Errorf("create snapshot: %w", err)
	}
	if err := snap.Persist(sink); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	return index, nil
}
