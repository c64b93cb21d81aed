package raftstore

import (
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
)

const tableAuditExport = "audit_export"

// auditSinkNameRE is the shape of a sink's name (audit_export.sinks[].name).
var auditSinkNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// maxAuditSinkError bounds the error text a sink's state keeps.
const maxAuditSinkError = 512

// AuditExportCursor is how far the cluster's audit exporter has shipped the
// audit log to one sink, and whether that sink is failing. It lives in raft
// so that the next leader's exporter starts where the last one stopped
// (gateway/auditexport, docs/audit-export.md).
type AuditExportCursor struct {
	Sink string
	// Seq is the last audit event the sink acknowledged; every event up to
	// it was delivered. It never moves backwards.
	Seq uint64
	// Node is the exporter (node id) that last moved Seq, and At when.
	Node string
	At   time.Time
	// FailingSince is when the current outage of the sink began (the
	// audit_sink.fail event was written then); zero while it is healthy.
	FailingSince time.Time `json:",omitempty"`
	// LastError is the outage's last error, cut to 512 bytes; no secret
	// is ever in it (the exporter's errors name no token or key).
	LastError   string `json:",omitempty"`
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableAuditExport,
		newObj: func() any { return new(AuditExportCursor) },
		schema: &memdb.TableSchema{
			Name: tableAuditExport,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Sink"}},
			},
		},
	})
	registerCommand(AuditExportCursorSetType, func() Command { return new(AuditExportCursorSet) })
	registerCommand(AuditSinkStateSetType, func() Command { return new(AuditSinkStateSet) })
}

func validAuditSink(name string) error {
	if !auditSinkNameRE.MatchString(name) {
		return invalidf("audit sink name %q: use lower-case letters, digits, - and _, up to 63 characters", name)
	}
	return nil
}

// AuditExportCursorSet records that a sink acknowledged every audit event up
// to Seq. A cursor at or past Seq writes nothing: two exporters for a moment
// (a deposed leader that has not noticed yet) can only move it forwards, and
// each only past events it delivered itself.
type AuditExportCursorSet struct {
	Sink string
	Seq  uint64
	Node string
	At   time.Time
}

func (c *AuditExportCursorSet) Type() MessageType { return AuditExportCursorSetType }

func (c *AuditExportCursorSet) Validate() error {
	if c.At.IsZero() {
		return invalidf("audit sink %s: cursor time is missing", c.Sink)
	}
	return validAuditSink(c.Sink)
}

func (c *AuditExportCursorSet) apply(tx *writeTxn) (any, error) {
	cur, err := auditExportCursorTxn(tx, c.Sink)
	if err != nil {
		return nil, err
	}
	if cur.Seq >= c.Seq && cur.ModifyIndex != 0 {
		return cur, nil
	}
	// Never past the head of the log: a cursor beyond it would skip events
	// not yet written.
	head, err := auditHeadTxn(tx)
	if err != nil {
		return nil, err
	}
	cur.Seq, cur.Node, cur.At, cur.ModifyIndex = min(c.Seq, head), c.Node, c.At.UTC(), tx.index
	if err := tx.Insert(tableAuditExport, cur); err != nil {
		return nil, fmt.Errorf("audit sink %s cursor: %w", c.Sink, err)
	}
	return cur, tx.bump(tableAuditExport)
}

// AuditSinkStateSet records the start (Failing, with the error) or the end
// (not Failing) of a sink's outage, so that the outage is audited once
// whichever node exports. It leaves the cursor alone.
type AuditSinkStateSet struct {
	Sink    string
	Failing bool
	At      time.Time
	Error   string
}

func (c *AuditSinkStateSet) Type() MessageType { return AuditSinkStateSetType }

func (c *AuditSinkStateSet) Validate() error {
	switch {
	case c.At.IsZero():
		return invalidf("audit sink %s: state time is missing", c.Sink)
	case len(c.Error) > maxAuditSinkError || !utf8.ValidString(c.Error):
		return invalidf("audit sink %s: error is over %d bytes or not UTF-8", c.Sink, maxAuditSinkError)
	}
	return validAuditSink(c.Sink)
}

func (c *AuditSinkStateSet) apply(tx *writeTxn) (any, error) {
	cur, err := auditExportCursorTxn(tx, c.Sink)
	if err != nil {
		return nil, err
	}
	if c.Failing {
		if cur.FailingSince.IsZero() {
			cur.FailingSince = c.At.UTC()
		}
		cur.LastError = c.Error
	} else {
		if cur.FailingSince.IsZero() && cur.ModifyIndex != 0 {
			return cur, nil
		}
		cur.FailingSince, cur.LastError = time.Time{}, ""
	}
	cur.ModifyIndex = tx.index
	if err := tx.Insert(tableAuditExport, cur); err != nil {
		return nil, fmt.Errorf("audit sink %s state: %w", c.Sink, err)
	}
	return cur, tx.bump(tableAuditExport)
}

// auditExportCursorTxn returns a copy of the sink's row, or a new one (with
// ModifyIndex 0) when it has none.
func auditExportCursorTxn(tx *writeTxn, sink string) (*AuditExportCursor, error) {
	raw, err := tx.First(tableAuditExport, "id", sink)
	if err != nil {
		return nil, fmt.Errorf("audit sink %s: %w", sink, err)
	}
	if raw == nil {
		return &AuditExportCursor{Sink: sink}, nil
	}
	cp := *raw.(*AuditExportCursor)
	return &cp, nil
}

// auditHeadTxn returns the newest event's seq (0 for an empty log).
func auditHeadTxn(tx *writeTxn) (uint64, error) {
	raw, err := tx.Last(tableAudit, "id")
	if err != nil {
		return 0, fmt.Errorf("audit head: %w", err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*AuditEvent).Seq, nil
}

// AuditExportCursorOf returns the sink's cursor, or nil when the cluster
// never exported to it.
func (s *State) AuditExportCursorOf(ws memdb.WatchSet, sink string) (uint64, *AuditExportCursor, error) {
	return getOne[AuditExportCursor](s, ws, tableAuditExport, "id", sink)
}

// AuditExportCursors lists every sink's cursor, by name.
func (s *State) AuditExportCursors(ws memdb.WatchSet) (uint64, []*AuditExportCursor, error) {
	return getAll[AuditExportCursor](s, ws, tableAuditExport, "id")
}
