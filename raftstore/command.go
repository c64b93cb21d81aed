package raftstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// commandVersion is the payload format this build writes and the newest it
// reads. A payload with a higher version is refused (ErrFutureVersion).
const commandVersion = 1

// headerLen is the length of the frame header: type byte + version byte.
const headerLen = 2

// Command is one typed mutation of the replicated state. Commands are plain
// data: everything that varies between nodes (time, random ids, allocated
// numbers) is either carried in the command or derived inside the FSM, so that
// every node applying the same log reaches the same state.
type Command interface {
	// Type is the command's MessageType.
	Type() MessageType
	// Validate checks the command before it enters the log and again before it
	// is applied; it returns an error wrapping ErrInvalid.
	Validate() error
	// apply runs inside the FSM's write transaction and returns the result
	// handed back to the proposer.
	apply(tx *writeTxn) (any, error)
}

// commandTypes maps each known MessageType to a constructor of its command.
var commandTypes = map[MessageType]func() Command{}

// registerCommand is called from the init of the file that owns the command.
func registerCommand(t MessageType, newCmd func() Command) {
	if _, dup := commandTypes[t]; dup {
		panic(fmt.Sprintf("raftstore: command type %d registered twice", t))
	}
	if t&IgnoreUnknownFlag != 0 {
		panic(fmt.Sprintf("raftstore: command type %d must not carry the ignore flag itself", t))
	}
	commandTypes[t] = newCmd
}

// KnownCommandTypes lists the registered types in order (for tests and docs).
func KnownCommandTypes() []MessageType {
	out := make([]MessageType, 0, len(commandTypes))
	for t := range commandTypes {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Encode validates cmd and frames it as type byte, version byte, JSON payload.
// The type byte of an ignorable command carries IgnoreUnknownFlag.
func Encode(cmd Command) ([]byte, error) {
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", cmd.Type(), err)
	}
	t := cmd.Type()
	if ignorable[t] {
		t |= IgnoreUnknownFlag
	}
	buf := make([]byte, 0, headerLen+len(payload))
	buf = append(buf, byte(t), commandVersion)
	return append(buf, payload...), nil
}

// Decode parses a framed command. An unknown type is reported as
// ErrUnknownCommand (the caller decides whether the ignore flag allows
// skipping it), a bad frame or payload as ErrCorruptCommand, a newer payload
// version as ErrFutureVersion; a decoded command is also validated. The
// ignore flag is cleared before the type is looked up: a command this node
// knows is applied whether or not its frame says it may be skipped.
func Decode(buf []byte) (Command, error) {
	if len(buf) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCorruptCommand, len(buf))
	}
	t, version := MessageType(buf[0])&^IgnoreUnknownFlag, buf[1]
	newCmd, ok := commandTypes[t]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownCommand, t)
	}
	if version == 0 {
		return nil, fmt.Errorf("%w: command %d has version 0", ErrCorruptCommand, t)
	}
	if version > commandVersion {
		return nil, fmt.Errorf("command %d version %d: %w (this node reads up to %d)", t, version, ErrFutureVersion, commandVersion)
	}
	cmd := newCmd()
	dec := json.NewDecoder(bytes.NewReader(buf[headerLen:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cmd); err != nil {
		// A field this node does not know was written by a newer version
		// (commands only ever gain fields): refusing it as corrupt would
		// let this node skip what the leader applied and silently diverge.
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return nil, fmt.Errorf("command %d: %v: %w (this node is older than the one that wrote it)", t, err, ErrFutureVersion)
		}
		return nil, fmt.Errorf("%w: command %d: %v", ErrCorruptCommand, t, err)
	}
	if rest := buf[headerLen+int(dec.InputOffset()):]; len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: command %d: trailing data", ErrCorruptCommand, t)
	}
	if err := cmd.Validate(); err != nil {
		return nil, fmt.Errorf("command %d: %w", t, err)
	}
	return cmd, nil
}

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
