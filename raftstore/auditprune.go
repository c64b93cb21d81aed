package raftstore

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Retention of the audit log: events pruned from its front are replaced by
// a signed checkpoint, so that the log stays verifiable from there on and a
// pruned range shows as pruned, never as a gap.

const (
	tableAuditState = "audit_state"
	auditStateKey   = "audit"
)

// Audit event types the state machine writes itself, in the transaction of
// the change they record (docs/audit-events.md).
const (
	EventAuditPrune           = "audit.prune"
	EventAuditRetentionUpdate = "audit_retention.update"
)

// MaxAuditPrune is the most events one AuditPrune may remove.
const MaxAuditPrune = 200000

// AuditCheckpoint stands for every event pruned so far: events FirstSeq
// (always 1) to LastSeq. Hash is the Hash of event LastSeq, which chains
// every event before it, so the event after it (PrevHash) continues a
// history the checkpoint vouches for. It is signed by the cluster's audit
// key (gateway/ca, derived from the key-encryption key).
type AuditCheckpoint struct {
	FirstSeq uint64
	LastSeq  uint64
	Count    uint64
	Hash     string
	// LastTime is event LastSeq's time; Created when the checkpoint was
	// made.
	LastTime time.Time
	Created  time.Time
	// PublicKey is the signer's ed25519 key (base64), Signature its
	// signature over AuditCheckpointSigned (base64).
	PublicKey string
	Signature string
}

// AuditRetention bounds the log; 0 is no bound.
type AuditRetention struct {
	MaxAge    time.Duration
	MaxEvents int64
}

// AuditState is the audit log's single row of bookkeeping.
type AuditState struct {
	// Key is always "audit".
	Key string
	// Checkpoint is nil until the first prune.
	Checkpoint *AuditCheckpoint
	// Retention is what the leader last recorded applying.
	Retention AuditRetention
}

func init() {
	registerTable(tableDef{
		name:   tableAuditState,
		newObj: func() any { return new(AuditState) },
		schema: &memdb.TableSchema{
			Name: tableAuditState,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	})
	registerCommand(AuditPruneType, func() Command { return new(AuditPrune) })
	registerCommand(AuditRetentionSetType, func() Command { return new(AuditRetentionSet) })
}

// AuditCheckpointSigned is what the audit key signs: a fixed prefix and the
// checkpoint's fields, Signature left out, as JSON.
func AuditCheckpointSigned(cp *AuditCheckpoint) []byte {
	buf, err := json.Marshal(struct {
		FirstSeq, LastSeq, Count uint64
		Hash, LastTime, Created  string
		PublicKey                string
	}{cp.FirstSeq, cp.LastSeq, cp.Count, cp.Hash, cp.LastTime.UTC().Format(time.RFC3339Nano), cp.Created.UTC().Format(time.RFC3339Nano), cp.PublicKey})
	if err != nil {
		panic(fmt.Sprintf("raftstore: encode audit checkpoint: %v", err)) // strings and numbers only
	}
	return append([]byte("rampart audit checkpoint v1\n"), buf...)
}

// SignAuditCheckpoint fills in cp's PublicKey and Signature.
func SignAuditCheckpoint(cp *AuditCheckpoint, key ed25519.PrivateKey) {
	cp.PublicKey = base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, AuditCheckpointSigned(cp)))
}

// AuditKeyFingerprint names an audit key as audit events show it.
func AuditKeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// VerifyAuditCheckpoint checks that cp is consistent and signed by key (the
// cluster's audit key): a checkpoint signed by any other key, or changed
// after signing, fails.
func VerifyAuditCheckpoint(cp *AuditCheckpoint, key ed25519.PublicKey) error {
	if err := cp.validate(); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if cp.PublicKey != base64.StdEncoding.EncodeToString(key) {
		return fmt.Errorf("audit checkpoint: signed by a key that is not this cluster's audit key")
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || !ed25519.Verify(key, AuditCheckpointSigned(cp), sig) {
		return fmt.Errorf("audit checkpoint: the signature does not verify")
	}
	return nil
}

func (cp *AuditCheckpoint) validate() error {
	switch {
	case cp.FirstSeq != 1 || cp.LastSeq < 1:
		return fmt.Errorf("range %d..%d: want 1 to the last pruned event", cp.FirstSeq, cp.LastSeq)
	case cp.Count != cp.LastSeq-cp.FirstSeq+1:
		return fmt.Errorf("count %d does not match the range %d..%d", cp.Count, cp.FirstSeq, cp.LastSeq)
	case len(cp.Hash) != 64:
		return fmt.Errorf("hash %q is not a SHA-256", cp.Hash)
	case cp.PublicKey == "" || cp.Signature == "":
		return fmt.Errorf("unsigned")
	}
	if _, err := hex.DecodeString(cp.Hash); err != nil {
		return fmt.Errorf("hash %q is not hex", cp.Hash)
	}
	return nil
}

// Anchor is the pruned event LastSeq as far as the chain needs it: the
// event the first kept one follows (VerifyAuditSegment's prev).
func (cp *AuditCheckpoint) Anchor() *AuditEvent {
	return &AuditEvent{Seq: cp.LastSeq, Hash: cp.Hash, Time: cp.LastTime}
}

// AuditPrune removes the events up to Checkpoint.LastSeq and keeps the
// checkpoint in their place, with an audit.prune event, in one
// transaction. The checkpoint must match the log (event LastSeq's hash and
// time), move forward, and leave at least one event.
type AuditPrune struct {
	Checkpoint AuditCheckpoint
	Node       string
	Now        time.Time
}

func (c *AuditPrune) Type() MessageType { return AuditPruneType }

func (c *AuditPrune) Validate() error {
	if err := c.Checkpoint.validate(); err != nil {
		return invalidf("audit prune: %v", err)
	}
	if c.Now.IsZero() {
		return invalidf("audit prune: time is missing")
	}
	return nil
}

func (c *AuditPrune) apply(tx *writeTxn) (any, error) {
	cur, err := auditStateTxn(tx)
	if err != nil {
		return nil, err
	}
	cp := c.Checkpoint
	from := uint64(1)
	if cur.Checkpoint != nil {
		if cp.LastSeq <= cur.Checkpoint.LastSeq {
			return nil, fmt.Errorf("audit prune to %d: already pruned to %d: %w", cp.LastSeq, cur.Checkpoint.LastSeq, ErrConflict)
		}
		from = cur.Checkpoint.LastSeq + 1
	}
	if err := auditPruneKeyTxn(tx, cur, &cp); err != nil {
		return nil, err
	}
	if cp.LastSeq-from+1 > MaxAuditPrune {
		return nil, fmt.Errorf("audit prune %d..%d: more than %d events at once: %w", from, cp.LastSeq, MaxAuditPrune, ErrInvalid)
	}
	raw, err := tx.First(tableAudit, "id", cp.LastSeq)
	if err != nil {
		return nil, fmt.Errorf("audit prune: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("audit prune to %d: no such event: %w", cp.LastSeq, ErrNotFound)
	}
	if e := raw.(*AuditEvent); e.Hash != cp.Hash || !e.Time.Equal(cp.LastTime) {
		return nil, fmt.Errorf("audit prune to %d: the checkpoint does not match the event: %w", cp.LastSeq, ErrConflict)
	}
	last, err := tx.Last(tableAudit, "id")
	if err != nil {
		return nil, fmt.Errorf("audit prune: %w", err)
	}
	if last.(*AuditEvent).Seq <= cp.LastSeq {
		return nil, fmt.Errorf("audit prune to %d: the newest event stays: %w", cp.LastSeq, ErrInvalid)
	}
	it, err := tx.LowerBound(tableAudit, "id", from)
	if err != nil {
		return nil, fmt.Errorf("audit prune: %w", err)
	}
	var doomed []any
	for raw := it.Next(); raw != nil && raw.(*AuditEvent).Seq <= cp.LastSeq; raw = it.Next() {
		doomed = append(doomed, raw)
	}
	for _, raw := range doomed {
		if err := tx.Delete(tableAudit, raw); err != nil {
			return nil, fmt.Errorf("audit prune: %w", err)
		}
	}
	next := *cur
	next.Checkpoint = &cp
	if err := tx.Insert(tableAuditState, &next); err != nil {
		return nil, fmt.Errorf("audit prune: %w", err)
	}
	key, _ := base64.StdEncoding.DecodeString(cp.PublicKey)
	ev := AuditEventInput{Time: c.Now.UTC(), Type: EventAuditPrune, Actor: "rampartd", Fields: map[string]string{
		"first_seq": strconv.FormatUint(from, 10), "last_seq": strconv.FormatUint(cp.LastSeq, 10),
		"count": strconv.Itoa(len(doomed)), "checkpoint_hash": cp.Hash, "key": AuditKeyFingerprint(key), "node": c.Node}}
	if _, err := (&AuditAppend{Events: []AuditEventInput{ev}}).apply(tx); err != nil {
		return nil, err
	}
	return &cp, tx.bump(tableAuditState)
}

// auditPruneKeyTxn refuses a checkpoint not signed by the cluster's audit
// key: the one ClusterInit recorded, else (a cluster bootstrapped before it
// was recorded) the key of the checkpoint already kept; the first prune of
// such a cluster is only checked to be signed by the key it names. Without
// this, a checkpoint the cluster never signed would delete events, and
// audit verify would only find out afterwards.
func auditPruneKeyTxn(tx *writeTxn, cur *AuditState, cp *AuditCheckpoint) error {
	meta, err := metaTxn(tx.Txn, nil)
	if err != nil {
		return err
	}
	want := meta.AuditKey
	if want == "" && cur.Checkpoint != nil {
		want = cur.Checkpoint.PublicKey
	}
	if want == "" {
		want = cp.PublicKey
	}
	key, err := base64.StdEncoding.DecodeString(want)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("audit prune to %d: the cluster's audit key is not an ed25519 key: %w", cp.LastSeq, ErrInvalid)
	}
	if err := VerifyAuditCheckpoint(cp, key); err != nil {
		return fmt.Errorf("audit prune to %d: %v: %w", cp.LastSeq, err, ErrInvalid)
	}
	return nil
}

// AuditRetentionSet records the retention the leader applies, with an
// audit_retention.update event when it changed. An unchanged one writes
// nothing.
type AuditRetentionSet struct {
	Retention AuditRetention
	Node      string
	Now       time.Time
}

func (c *AuditRetentionSet) Type() MessageType { return AuditRetentionSetType }

func (c *AuditRetentionSet) Validate() error {
	switch {
	case c.Retention.MaxAge < 0 || c.Retention.MaxEvents < 0:
		return invalidf("audit retention: max age %s and max events %d must not be negative", c.Retention.MaxAge, c.Retention.MaxEvents)
	case c.Now.IsZero():
		return invalidf("audit retention: time is missing")
	}
	return nil
}

func (c *AuditRetentionSet) apply(tx *writeTxn) (any, error) {
	cur, err := auditStateTxn(tx)
	if err != nil {
		return nil, err
	}
	if cur.Retention == c.Retention {
		return false, nil
	}
	old := cur.Retention
	next := *cur
	next.Retention = c.Retention
	if err := tx.Insert(tableAuditState, &next); err != nil {
		return nil, fmt.Errorf("audit retention: %w", err)
	}
	ev := AuditEventInput{Time: c.Now.UTC(), Type: EventAuditRetentionUpdate, Actor: "rampartd", Fields: map[string]string{
		"max_age": c.Retention.MaxAge.String(), "max_events": strconv.FormatInt(c.Retention.MaxEvents, 10),
		"old_max_age": old.MaxAge.String(), "old_max_events": strconv.FormatInt(old.MaxEvents, 10), "node": c.Node}}
	if _, err := (&AuditAppend{Events: []AuditEventInput{ev}}).apply(tx); err != nil {
		return nil, err
	}
	return true, tx.bump(tableAuditState)
}

// auditStateTxn reads the audit state row (an empty one when none).
func auditStateTxn(tx *writeTxn) (*AuditState, error) {
	raw, err := tx.First(tableAuditState, "id", auditStateKey)
	if err != nil {
		return nil, fmt.Errorf("read audit state: %w", err)
	}
	if raw == nil {
		return &AuditState{Key: auditStateKey}, nil
	}
	return raw.(*AuditState), nil
}

// AuditStateOf returns the audit log's bookkeeping: its checkpoint (nil when
// nothing was pruned) and retention.
func (s *State) AuditStateOf(ws memdb.WatchSet) (uint64, *AuditState, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	ch, raw, err := tx.FirstWatch(tableAuditState, "id", auditStateKey)
	if err != nil {
		return 0, nil, fmt.Errorf("read audit state: %w", err)
	}
	ws.Add(ch)
	idx := maxIndexTxn(tx, ws, tableAuditState)
	if raw == nil {
		return idx, &AuditState{Key: auditStateKey}, nil
	}
	return idx, raw.(*AuditState), nil
}

// AuditFirst returns the oldest event kept, or nil.
func (s *State) AuditFirst() (*AuditEvent, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	raw, err := tx.First(tableAudit, "id")
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*AuditEvent), nil
}

// AuditVerifyResult is what VerifyAudit found.
type AuditVerifyResult struct {
	// Events were checked, FirstSeq..LastSeq; HeadHash is the newest's.
	Events            int
	FirstSeq, LastSeq uint64
	HeadHash          string
	// Pruned is the checkpoint the log was verified from (nil: from seq 1).
	Pruned *AuditCheckpoint
}

// VerifyAudit proves the log: its checkpoint, when it has one, is signed by
// key and the first event kept follows it; from there every event chains to
// the one before (VerifyAuditSegment), page events at a time. The error is
// an *AuditChainError for a broken chain.
func (s *State) VerifyAudit(key ed25519.PublicKey, page int) (*AuditVerifyResult, error) {
	_, st, err := s.AuditStateOf(nil)
	if err != nil {
		return nil, err
	}
	r := &AuditVerifyResult{}
	var prev *AuditEvent
	if cp := st.Checkpoint; cp != nil {
		if err := VerifyAuditCheckpoint(cp, key); err != nil {
			return r, &AuditChainError{Seq: cp.LastSeq, Problem: err.Error()}
		}
		r.Pruned, prev = cp, cp.Anchor()
	}
	after := uint64(0)
	if prev != nil {
		after = prev.Seq
	}
	for {
		_, batch, err := s.AuditSince(nil, after, page)
		if err != nil {
			return r, err
		}
		if len(batch) == 0 {
			return r, nil
		}
		if err := VerifyAuditSegment(prev, batch); err != nil {
			return r, err
		}
		if r.Events == 0 {
			r.FirstSeq = batch[0].Seq
		}
		r.Events += len(batch)
		prev = batch[len(batch)-1]
		after, r.LastSeq, r.HeadHash = prev.Seq, prev.Seq, prev.Hash
	}
}
