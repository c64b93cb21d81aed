package raftstore

import (
	"fmt"
	"maps"
	"strconv"
	"time"
)

// EventAuditExportCursorDelete is the audit event of a removed export
// cursor (docs/audit-events.md).
const EventAuditExportCursorDelete = "audit_export_cursor.delete"

// AuditExportCursorDelete forgets a sink's cursor, with an
// audit_export_cursor.delete event in the same transaction. Every cursor in
// raft holds audit retention back (gateway/auditlog), so the cursor of a
// sink taken out of audit_export.sinks would hold it forever; an operator
// removes it (ssh admin@bastion audit export-cursors rm NAME). A sink still
// configured starts again from the first event kept.
type AuditExportCursorDelete struct {
	Sink string
	// Actor and Fields are the event's (the admin shell's command, source
	// and admin id).
	Actor  string
	Fields map[string]string `json:",omitempty"`
	Now    time.Time
}

func (c *AuditExportCursorDelete) Type() MessageType { return AuditExportCursorDeleteType }

func (c *AuditExportCursorDelete) Validate() error {
	if c.Now.IsZero() {
		return invalidf("audit sink %s: time is missing", c.Sink)
	}
	return validAuditSink(c.Sink)
}

func (c *AuditExportCursorDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableAuditExport, "id", c.Sink)
	if err != nil {
		return nil, fmt.Errorf("audit sink %s: %w", c.Sink, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("audit sink %s has no export cursor: %w", c.Sink, ErrNotFound)
	}
	cur := raw.(*AuditExportCursor)
	if err := tx.Delete(tableAuditExport, cur); err != nil {
		return nil, fmt.Errorf("audit sink %s: %w", c.Sink, err)
	}
	f := maps.Clone(c.Fields)
	if f == nil {
		f = map[string]string{}
	}
	f["sink"], f["seq"] = c.Sink, strconv.FormatUint(cur.Seq, 10)
	ev := AuditEventInput{Time: c.Now.UTC(), Type: EventAuditExportCursorDelete, Actor: c.Actor, Fields: f}
	if _, err := (&AuditAppend{Events: []AuditEventInput{ev}}).apply(tx); err != nil {
		return nil, err
	}
	return cur, tx.bump(tableAuditExport)
}

func init() {
	registerCommand(AuditExportCursorDeleteType, func() Command { return new(AuditExportCursorDelete) })
}
