package raftstore

import (
	"fmt"
)

// MaxAgentEventBatch is the most events one AgentEventsAppend may carry.
const MaxAgentEventBatch = 1000

func init() {
	registerCommand(AgentEventsAppendType, func() Command { return new(AgentEventsAppend) })
}

// AgentEvent is one event an agent reported, numbered by the agent.
type AgentEvent struct {
	// Seq is the agent's number for the event: increasing, never reused.
	Seq   uint64
	Event AuditEventInput
}

// AgentEventsAppend records a batch of events reported by a server's agent
// exactly once. Events numbered above the server's LastEventSeq are appended
// to the audit chain in order and LastEventSeq moves to the last of them;
// the others were recorded by an earlier delivery of the same batch (an
// answer the agent never got) and are skipped. Both happen in one
// transaction, so the audit log and the record of what it holds cannot
// disagree, whatever fails.
//
// Moving LastEventSeq neither changes the server's ModifyIndex nor bumps
// the servers table's index: it is bookkeeping of the event stream, not a
// change of the server, and bumping the table would wake every agent's
// long-poll on every login anywhere in the fleet.
type AgentEventsAppend struct {
	ServerID string
	Events   []AgentEvent
}

// AgentEventsResult is what AgentEventsAppend returns.
type AgentEventsResult struct {
	// LastSeq is the server's LastEventSeq after the batch.
	LastSeq uint64
	// Accepted events were appended now; Duplicates were recorded before.
	Accepted   int
	Duplicates int
	// AuditSeq is the audit seq of the last event appended (0: none).
	AuditSeq uint64
}

func (c *AgentEventsAppend) Type() MessageType { return AgentEventsAppendType }

func (c *AgentEventsAppend) Validate() error {
	if err := validServerID(c.ServerID); err != nil {
		return err
	}
	if n := len(c.Events); n == 0 || n > MaxAgentEventBatch {
		return invalidf("agent events of %s: %d events, want 1 to %d", c.ServerID, n, MaxAgentEventBatch)
	}
	var prev uint64
	for i := range c.Events {
		e := &c.Events[i]
		if e.Seq <= prev {
			return invalidf("agent events of %s: seq %d follows %d: seqs must increase", c.ServerID, e.Seq, prev)
		}
		prev = e.Seq
		if err := e.Event.validate(); err != nil {
			return invalidf("agent event %d of %s: %v", e.Seq, c.ServerID, err)
		}
	}
	return nil
}

func (c *AgentEventsAppend) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServers, "id", c.ServerID)
	if err != nil {
		return nil, fmt.Errorf("agent events of %s: %w", c.ServerID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("server %s: %w", c.ServerID, ErrNotFound)
	}
	srv := *raw.(*Server)
	res := &AgentEventsResult{LastSeq: srv.LastEventSeq}
	var fresh []AuditEventInput
	for _, e := range c.Events {
		if e.Seq <= res.LastSeq {
			res.Duplicates++
			continue
		}
		fresh = append(fresh, e.Event)
		res.LastSeq = e.Seq
	}
	res.Accepted = len(fresh)
	if len(fresh) == 0 {
		return res, nil // all seen: nothing to write, nobody to wake
	}
	head, err := (&AuditAppend{Events: fresh}).apply(tx)
	if err != nil {
		return nil, fmt.Errorf("agent events of %s: %w", c.ServerID, err)
	}
	res.AuditSeq = head.(*AuditEvent).Seq
	srv.LastEventSeq = res.LastSeq
	if err := tx.Insert(tableServers, &srv); err != nil {
		return nil, fmt.Errorf("update server %s: %w", c.ServerID, err)
	}
	return res, nil
}
