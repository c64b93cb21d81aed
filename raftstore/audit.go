package raftstore

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
)

const tableAudit = "audit"

// MaxAuditBatch is the most events one AuditAppend may carry.
const MaxAuditBatch = 10000

// AuditZeroHash is the PrevHash of the first event of the chain.
const AuditZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// auditTypeRE is the shape of an event type: "login.ok", "session.open".
var auditTypeRE = regexp.MustCompile(`^[a-z][a-z0-9._-]*$`)

// AuditEvent is one entry of the append-only audit log. Each event carries the
// hash of the one before it, so removing, reordering or editing any event
// breaks the chain from there on (VerifyAuditChain).
type AuditEvent struct {
	// Seq numbers events from 1 with no gap.
	Seq    uint64
	Time   time.Time
	Type   string
	Actor  string
	Fields map[string]string
	// PrevHash is the Hash of event Seq-1 (AuditZeroHash for the first).
	PrevHash string
	// Hash is AuditHash of this event, hex-encoded SHA-256.
	Hash string
}

// auditCanonical is what AuditHash hashes. JSON makes the encoding
// unambiguous (every string is quoted and escaped, so no two events share an
// encoding) and sorts map keys. V numbers the encoding so it can change
// without breaking old chains.
type auditCanonical struct {
	V        int               `json:"v"`
	Seq      uint64            `json:"seq"`
	Time     string            `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor"`
	Fields   map[string]string `json:"fields"`
	PrevHash string            `json:"prev"`
}

// AuditHash returns the hex SHA-256 of e's canonical encoding: the JSON object
// {"v":1,"seq":…,"time":…,"type":…,"actor":…,"fields":{…},"prev":…} with
// time in RFC 3339 (nanoseconds, UTC), fields with sorted keys (no fields and
// empty fields encode alike as {}), and no whitespace. e.Hash is not covered.
func AuditHash(e *AuditEvent) string {
	fields := e.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	buf, err := json.Marshal(auditCanonical{
		V:        1,
		Seq:      e.Seq,
		Time:     e.Time.UTC().Format(time.RFC3339Nano),
		Type:     e.Type,
		Actor:    e.Actor,
		Fields:   fields,
		PrevHash: e.PrevHash,
	})
	if err != nil {
		// Only strings and a string map: Marshal cannot fail.
		panic(fmt.Sprintf("raftstore: encode audit event %d: %v", e.Seq, err))
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// AuditChainError reports where an audit chain breaks.
type AuditChainError struct {
	// Seq is the first event found wrong (or, for a gap, the seq expected).
	Seq     uint64
	Problem string
}

func (e *AuditChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Problem)
}

// VerifyAuditChain checks a whole chain, which must start at seq 1: no gap in
// Seq, every PrevHash the Hash before it, every Hash recomputed. It returns
// the first problem as an *AuditChainError, or nil (also for no events).
func VerifyAuditChain(events []*AuditEvent) error {
	return VerifyAuditSegment(nil, events)
}

// VerifyAuditSegment checks events as the continuation of prev, the last
// event already verified (nil: events start the chain at seq 1). It lets a
// long log be verified page by page, or an exported file be verified against
// the last line of the file before it.
func VerifyAuditSegment(prev *AuditEvent, events []*AuditEvent) error {
	wantSeq, wantPrev := uint64(1), AuditZeroHash
	if prev != nil {
		wantSeq, wantPrev = prev.Seq+1, prev.Hash
	}
	for _, e := range events {
		switch {
		case e.Seq != wantSeq:
			return &AuditChainError{Seq: wantSeq, Problem: fmt.Sprintf("missing (next event has seq %d)", e.Seq)}
		case e.PrevHash != wantPrev:
			return &AuditChainError{Seq: e.Seq, Problem: "previous-hash does not match the event before it"}
		case AuditHash(e) != e.Hash:
			return &AuditChainError{Seq: e.Seq, Problem: "hash does not match the event's content"}
		}
		wantSeq, wantPrev = e.Seq+1, e.Hash
	}
	return nil
}

func init() {
	registerTable(tableDef{
		name:   tableAudit,
		newObj: func() any { return new(AuditEvent) },
		schema: &memdb.TableSchema{
			Name: tableAudit,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
				// session: the events that name a session (AuditOfSession).
				"session": {Name: "session", AllowMissing: true, Indexer: auditSessionIndex{}},
			},
		},
	})
	registerCommand(AuditAppendType, func() Command { return new(AuditAppend) })
}

// AuditEventInput is an event as its source reports it; the FSM numbers and
// chains it.
type AuditEventInput struct {
	Time   time.Time
	Type   string
	Actor  string
	Fields map[string]string
}

// AuditAppend appends events to the chain, in order. Its result is the last
// event appended (the new head of the chain).
type AuditAppend struct {
	Events []AuditEventInput
}

func (c *AuditAppend) Type() MessageType { return AuditAppendType }

func (c *AuditAppend) Validate() error {
	if n := len(c.Events); n == 0 || n > MaxAuditBatch {
		return invalidf("audit append: %d events, want 1 to %d", n, MaxAuditBatch)
	}
	for i := range c.Events {
		if err := c.Events[i].validate(); err != nil {
			return invalidf("audit event %d: %v", i, err)
		}
	}
	return nil
}

// validate refuses what the canonical encoding could not keep apart: JSON
// replaces invalid UTF-8 with U+FFFD, so two different byte strings would
// hash alike.
func (in *AuditEventInput) validate() error {
	switch {
	case in.Time.IsZero():
		return fmt.Errorf("time is missing")
	case !auditTypeRE.MatchString(in.Type):
		return fmt.Errorf("type %q is not lower-case dotted words", in.Type)
	case !utf8.ValidString(in.Actor):
		return fmt.Errorf("actor is not valid UTF-8")
	}
	for k, v := range in.Fields {
		switch {
		case k == "":
			return fmt.Errorf("empty field name")
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return fmt.Errorf("field %q is not valid UTF-8", k)
		}
	}
	return nil
}

func (c *AuditAppend) apply(tx *writeTxn) (any, error) {
	raw, err := tx.Last(tableAudit, "id")
	if err != nil {
		return nil, fmt.Errorf("audit append: %w", err)
	}
	seq, prevHash := uint64(0), AuditZeroHash
	if raw != nil {
		last := raw.(*AuditEvent)
		seq, prevHash = last.Seq, last.Hash
	} else {
		// Nothing kept: the chain continues from the checkpoint, if any
		// (a prune always keeps one event, so this is belt and braces).
		st, err := auditStateTxn(tx)
		if err != nil {
			return nil, err
		}
		if cp := st.Checkpoint; cp != nil {
			seq, prevHash = cp.LastSeq, cp.Hash
		}
	}
	var e *AuditEvent
	for _, in := range c.Events {
		seq++
		e = &AuditEvent{
			Seq:      seq,
			Time:     in.Time.UTC(),
			Type:     in.Type,
			Actor:    in.Actor,
			Fields:   maps.Clone(in.Fields),
			PrevHash: prevHash,
		}
		e.Hash = AuditHash(e)
		if err := tx.Insert(tableAudit, e); err != nil {
			return nil, fmt.Errorf("insert audit event %d: %w", seq, err)
		}
		prevHash = e.Hash
	}
	return e, tx.bump(tableAudit)
}

// AuditLast returns the newest event (the head of the chain), or nil.
func (s *State) AuditLast(ws memdb.WatchSet) (uint64, *AuditEvent, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	ch, raw, err := tx.LastWatch(tableAudit, "id")
	if err != nil {
		return 0, nil, fmt.Errorf("read last audit event: %w", err)
	}
	ws.Add(ch)
	idx := maxIndexTxn(tx, ws, tableAudit)
	if raw == nil {
		return idx, nil, nil
	}
	return idx, raw.(*AuditEvent), nil
}

// AuditSince returns up to limit events with Seq above afterSeq, oldest first
// (all of them when limit is 0 or less). The watch is on the audit table's
// index, which every append moves.
func (s *State) AuditSince(ws memdb.WatchSet, afterSeq uint64, limit int) (uint64, []*AuditEvent, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	idx := maxIndexTxn(tx, ws, tableAudit)
	if afterSeq == math.MaxUint64 {
		return idx, nil, nil
	}
	// LowerBound iterators have no watch channel; the index row above is it.
	it, err := tx.LowerBound(tableAudit, "id", afterSeq+1)
	if err != nil {
		return 0, nil, fmt.Errorf("list audit events after %d: %w", afterSeq, err)
	}
	var out []*AuditEvent
	for raw := it.Next(); raw != nil && (limit <= 0 || len(out) < limit); raw = it.Next() {
		out = append(out, raw.(*AuditEvent))
	}
	return idx, out, nil
}

// auditSessionIndex indexes an event by its "session" field.
type auditSessionIndex struct{}

func (auditSessionIndex) FromObject(raw any) (bool, []byte, error) {
	e, ok := raw.(*AuditEvent)
	if !ok {
		return false, nil, fmt.Errorf("audit session index: %T is not an audit event", raw)
	}
	v := e.Fields["session"]
	if v == "" {
		return false, nil, nil
	}
	return true, []byte(v + "\x00"), nil
}

func (auditSessionIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("audit session index: one argument, got %d", len(args))
	}
	v, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("audit session index: %T is not a string", args[0])
	}
	return []byte(v + "\x00"), nil
}

// AuditOfSession returns the events whose "session" field is session,
// oldest first, at most limit of them (the oldest), and whether there
// were more.
func (s *State) AuditOfSession(ws memdb.WatchSet, session string, limit int) (uint64, []*AuditEvent, bool, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	it, err := tx.Get(tableAudit, "session", session)
	if err != nil {
		return 0, nil, false, fmt.Errorf("audit events of session %s: %w", session, err)
	}
	ws.Add(it.WatchCh())
	var out []*AuditEvent
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*AuditEvent))
	}
	// The index orders events by their encoded Seq, not numerically.
	slices.SortFunc(out, func(a, b *AuditEvent) int { return cmp.Compare(a.Seq, b.Seq) })
	more := limit > 0 && len(out) > limit
	if more {
		out = out[:limit]
	}
	return maxIndexTxn(tx, ws, tableAudit), out, more, nil
}

// Audit lists every event, oldest first.
func (s *State) Audit(ws memdb.WatchSet) (uint64, []*AuditEvent, error) {
	return getAll[AuditEvent](s, ws, tableAudit, "id")
}
