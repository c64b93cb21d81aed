package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// ApplyResult is what the FSM hands back for one applied command.
type ApplyResult struct {
	// Index is the raft index the command was applied at.
	Index uint64
	// Value is the command's result (an allocated uid, a created object...).
	Value any
	// Err is the reason the command was refused; nothing was applied then.
	Err error
}

// FSM is the raft finite state machine. It is deliberately thin: Apply decodes
// and hands the command to its own apply method inside one memdb transaction;
// Snapshot and Restore stream the tables.
type FSM struct {
	logger *slog.Logger

	// mu guards state, which a Restore replaces wholesale.
	mu    sync.RWMutex
	state *State

	// applied is the raft index of the last command this FSM has applied
	// (raft's own AppliedIndex counts entries handed over, not applied).
	applied atomic.Uint64
}

// AppliedIndex is the index of the last command the FSM has applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// NewFSM returns an FSM over an empty state.
func NewFSM(logger *slog.Logger) (*FSM, error) {
	st, err := NewState()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{logger: logger, state: st}, nil
}

// State returns the current generation of the state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return f.ApplyCommand(l.Index, l.Data)
}

// ApplyCommand applies one framed command at index. It is exported so that a
// log can be replayed without raft (tests, recovery tools).
//
// A corrupt or invalid command is refused with an error and changes nothing:
// every node decodes the same bytes the same way, so refusing keeps them in
// step. An unknown type (or a payload from a newer version) is different: the
// leader applied it, so skipping it here would let this node diverge. Unless
// the command carries IgnoreUnknownFlag, the node stops with a message naming
// the fix, as Consul does.
func (f *FSM) ApplyCommand(index uint64, buf []byte) *ApplyResult {
	defer f.applied.Store(index)
	cmd, err := Decode(buf)
	if err != nil {
		if errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrFutureVersion) {
			t := MessageType(buf[0])
			if t&IgnoreUnknownFlag != 0 {
				f.logger.Warn("skipping unknown command marked ignorable", "type", uint8(t), "index", index)
				return &ApplyResult{Index: index}
			}
			panic(fmt.Sprintf("raftstore: cannot apply log index %d: %v; this node is older than the cluster that wrote it: upgrade it", index, err))
		}
		f.logger.Error("refusing command", "index", index, "err", err)
		return &ApplyResult{Index: index, Err: err}
	}
	st := f.State()
	tx := st.newWriteTxn(index)
	defer tx.Abort()
	value, err := cmd.apply(tx)
	if err != nil {
		return &ApplyResult{Index: index, Err: err}
	}
	tx.Commit()
	return &ApplyResult{Index: index, Value: value}
}

// Snapshot implements raft.FSM: it captures a read transaction, which memdb
// keeps consistent while writes go on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{tx: f.State().ReadTxn(), applied: f.AppliedIndex()}, nil
}

// Restore implements raft.FSM: it builds a new state from the snapshot, swaps
// it in, and abandons the old one so that every watcher wakes.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, applied, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.applied.Store(applied)
	f.mu.Lock()
	old := f.state
	f.state = st
	f.mu.Unlock()
	old.abandon()
	return nil
}
