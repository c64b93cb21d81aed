package raftstore

import "errors"

// Sentinel errors. Callers compare with errors.Is; raft's own errors are
// translated at the package edge so that no caller imports raft.
var (
	// ErrNotFound: the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write collides with an existing object (a unique name,
	// a uid already taken, a stale compare-and-set).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the command or one of its fields failed validation.
	ErrInvalid = errors.New("invalid")
	// ErrNotLeader: this node is not the leader and the write was not forwarded.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: the cluster has no reachable leader right now.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrStaleRead: this node has not heard from a leader within the configured
	// bound, so it refuses to answer from its possibly stale copy.
	ErrStaleRead = errors.New("state may be stale: no contact with the leader")
	// ErrUnknownCommand: a command type this version does not know, without the
	// ignore-if-unknown flag.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrCorruptCommand: a command that cannot be decoded.
	ErrCorruptCommand = errors.New("corrupt command")
	// ErrFutureVersion: a command or snapshot written by a newer version.
	ErrFutureVersion = errors.New("written by a newer version")
	// ErrExpired: a token or binding whose time is up.
	ErrExpired = errors.New("expired")
	// ErrExhausted: a token with no uses left.
	ErrExhausted = errors.New("no uses left")
	// ErrShutdown: the store is closing.
	ErrShutdown = errors.New("store is shut down")
	// ErrRangeExhausted: the uid or gid range has no number left.
	ErrRangeExhausted = errors.New("id range exhausted")
	// ErrOutcomeUnknown: the leader was lost after the write was sent; it may
	// or may not have been applied. Retry only what is safe to repeat.
	ErrOutcomeUnknown = errors.New("outcome unknown: the leader was lost mid-request")
	// ErrPeerRefused: a node-to-node connection from a certificate that is
	// not (or no longer) a member of this cluster.
	ErrPeerRefused = errors.New("peer is not a member of this cluster")
)

// errorCodes maps stable codes to sentinels so that an error travelling from
// the leader to a forwarding follower keeps its identity.
var errorCodes = map[string]error{
	"not_found":       ErrNotFound,
	"conflict":        ErrConflict,
	"invalid":         ErrInvalid,
	"not_leader":      ErrNotLeader,
	"no_leader":       ErrNoLeader,
	"stale":           ErrStaleRead,
	"unknown_command": ErrUnknownCommand,
	"corrupt_command": ErrCorruptCommand,
	"future_version":  ErrFutureVersion,
	"expired":         ErrExpired,
	"exhausted":       ErrExhausted,
	"shutdown":        ErrShutdown,
	"range_exhausted": ErrRangeExhausted,
	"outcome_unknown": ErrOutcomeUnknown,
	"peer_refused":    ErrPeerRefused,
}

// errorCodeOrder fixes which code wins when an error wraps several sentinels:
// the most specific first.
var errorCodeOrder = []string{
	"unknown_command", "corrupt_command", "future_version", "expired", "exhausted", "range_exhausted",
	"not_found", "conflict", "invalid", "stale", "outcome_unknown", "peer_refused", "not_leader", "no_leader", "shutdown",
}

// ErrorCode returns the stable code of the sentinel err wraps, or "".
func ErrorCode(err error) string {
	for _, code := range errorCodeOrder {
		if errors.Is(err, errorCodes[code]) {
			return code
		}
	}
	return ""
}

// remoteError is an error received from another node: its message is the
// remote's, and it still matches the sentinel its code names.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// errorFromWire rebuilds an error sent by another node.
func errorFromWire(code, msg string) error {
	if msg == "" && code == "" {
		return nil
	}
	return &remoteError{msg: msg, sentinel: errorCodes[code]}
}
