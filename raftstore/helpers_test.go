package raftstore

import (
	"testing"

	"github.com/hashicorp/go-memdb"
	"time"
)

// testNow is the fixed time commands carry in tests.
var testNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// testFSM returns an FSM over an empty state.
func testFSM(t *testing.T) *FSM {
	t.Helper()
	f, err := NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// mustApply encodes cmd, applies it at the next index and fails the test on
// any error; it returns the command's result value.
func mustApply(t *testing.T, f *FSM, cmd Command) any {
	t.Helper()
	res := apply(t, f, cmd)
	if res.Err != nil {
		t.Fatalf("apply %T: %v", cmd, res.Err)
	}
	return res.Value
}

// apply encodes cmd and applies it at the next index, returning the result.
func apply(t *testing.T, f *FSM, cmd Command) *ApplyResult {
	t.Helper()
	buf, err := Encode(cmd)
	if err != nil {
		// Encode validates; hand invalid commands to the FSM anyway so that
		// tests see the FSM refuse them too.
		buf = encodeUnchecked(t, cmd)
	}
	return f.ApplyCommand(f.State().LatestIndex()+1, buf)
}

// fired reports, without blocking, whether any channel of ws has fired.
func fired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}
