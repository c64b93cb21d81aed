package auditexport

import (
	"encoding/json"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Record is an audit event as every sink carries it (one JSON object; one
// line in the file sink). Seq numbers events without gaps across the
// cluster: a receiver dedupes by it, and can check the hash chain with Hash
// and PrevHash (raftstore.VerifyAuditSegment).
type Record struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor"`
	Fields   map[string]string `json:"fields,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// NewRecord returns e as a Record.
func NewRecord(e *raftstore.AuditEvent) Record {
	return Record{Seq: e.Seq, Time: e.Time.UTC(), Type: e.Type, Actor: e.Actor, Fields: e.Fields, PrevHash: e.PrevHash, Hash: e.Hash}
}

// Event returns the record as the event it came from.
func (r *Record) Event() *raftstore.AuditEvent {
	return &raftstore.AuditEvent{Seq: r.Seq, Time: r.Time, Type: r.Type, Actor: r.Actor, Fields: r.Fields, PrevHash: r.PrevHash, Hash: r.Hash}
}

// appendJSON appends e's record as JSON (no newline).
func appendJSON(buf []byte, e *raftstore.AuditEvent) []byte {
	b, err := json.Marshal(NewRecord(e))
	if err != nil {
		// Strings, a string map, a time and numbers: Marshal cannot fail.
		panic("auditexport: encode record: " + err.Error())
	}
	return append(buf, b...)
}
