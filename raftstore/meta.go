package raftstore

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Default id ranges of a state that no ClusterInit has set: that of unit
// tests, and of a cluster that has not bootstrapped yet. UIDs and GIDs are
// allocated once, by the cluster, so a user has the same uid on every
// server; a number is never handed out twice, even after the user is
// deleted. These are the ranges new clusters got before 2027; bootstrap
// now records rampartd's cluster.uid_range and gid_range (defaults
// 70000-89999 and 90000-99999) and every cluster keeps the ranges it
// recorded.
const (
	DefaultUIDStart = 60001
	DefaultUIDEnd   = 62999
	DefaultGIDStart = 63001
	DefaultGIDEnd   = 65533
)

const (
	tableMeta = "meta"
	metaKey   = "cluster"
)

// ClusterMeta is the cluster's single row of identity and counters.
type ClusterMeta struct {
	// Key is always "cluster".
	Key       string
	ClusterID string
	CreatedAt time.Time
	// UIDNext and GIDNext are the next numbers to try; they only grow.
	UIDNext, UIDEnd uint32
	GIDNext, GIDEnd uint32
	// TLSCACert is the cluster TLS CA certificate (PEM); TLSCAKeySealed is its
	// private key sealed under the key-encryption key, which never enters raft.
	TLSCACert      string
	TLSCAKeySealed []byte
	// AuditKey is the cluster's audit public key (ed25519, base64), which
	// every AuditPrune's checkpoint must be signed by; empty for a cluster
	// bootstrapped before it was recorded (its first checkpoint's key is
	// then the one every later prune must use).
	AuditKey    string `json:",omitempty"`
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableMeta,
		newObj: func() any { return new(ClusterMeta) },
		schema: &memdb.TableSchema{
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	})
	registerCommand(ClusterInitType, func() Command { return new(ClusterInit) })
}

// ClusterInit records the cluster's identity once, at bootstrap. Applying it
// again with the same ClusterID is a no-op; with another id it is refused.
type ClusterInit struct {
	ClusterID      string
	Now            time.Time
	UIDStart       uint32
	UIDEnd         uint32
	GIDStart       uint32
	GIDEnd         uint32
	TLSCACert      string
	TLSCAKeySealed []byte
	// AuditKey is the audit public key (ed25519, base64) derived from the
	// key-encryption key (gateway/ca AuditKey); omitted by older nodes.
	AuditKey string `json:",omitempty"`
}

func (c *ClusterInit) Type() MessageType { return ClusterInitType }

func (c *ClusterInit) Validate() error {
	switch {
	case c.ClusterID == "":
		return invalidf("cluster id is empty")
	case c.UIDStart < 1000 || c.UIDEnd < c.UIDStart:
		return invalidf("uid range %d-%d: start must be at least 1000 and end not below start", c.UIDStart, c.UIDEnd)
	case c.GIDStart < 1000 || c.GIDEnd < c.GIDStart:
		return invalidf("gid range %d-%d: start must be at least 1000 and end not below start", c.GIDStart, c.GIDEnd)
	case c.TLSCACert == "" || len(c.TLSCAKeySealed) == 0:
		return invalidf("cluster TLS CA certificate and sealed key are required")
	}
	if c.AuditKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.AuditKey); err != nil || len(k) != ed25519.PublicKeySize {
			return invalidf("audit key is not an ed25519 public key")
		}
	}
	return nil
}

func (c *ClusterInit) apply(tx *writeTxn) (any, error) {
	cur, err := metaTxn(tx.Txn, nil)
	if err != nil {
		return nil, err
	}
	if cur.ClusterID != "" {
		if cur.ClusterID == c.ClusterID {
			return cur.ClusterID, nil
		}
		return nil, fmt.Errorf("%w: cluster already initialised as %s", ErrConflict, cur.ClusterID)
	}
	m := *cur
	m.ClusterID, m.CreatedAt = c.ClusterID, c.Now
	if cur.ModifyIndex == 0 {
		// No number handed out yet: the configured ranges apply as given.
		m.UIDNext, m.GIDNext = c.UIDStart, c.GIDStart
	} else {
		// Numbers were handed out before init: never go back below them.
		m.UIDNext, m.GIDNext = max(c.UIDStart, m.UIDNext), max(c.GIDStart, m.GIDNext)
	}
	m.UIDEnd, m.GIDEnd = c.UIDEnd, c.GIDEnd
	m.TLSCACert, m.TLSCAKeySealed, m.AuditKey = c.TLSCACert, c.TLSCAKeySealed, c.AuditKey
	return m.ClusterID, putMetaTxn(tx, &m)
}

// metaTxn returns the meta row, or the defaults when the cluster has none yet.
func metaTxn(tx *memdb.Txn, ws memdb.WatchSet) (*ClusterMeta, error) {
	ch, raw, err := tx.FirstWatch(tableMeta, "id", metaKey)
	if err != nil {
		return nil, fmt.Errorf("read cluster meta: %w", err)
	}
	ws.Add(ch)
	if raw == nil {
		return &ClusterMeta{Key: metaKey, UIDNext: DefaultUIDStart, UIDEnd: DefaultUIDEnd, GIDNext: DefaultGIDStart, GIDEnd: DefaultGIDEnd}, nil
	}
	return raw.(*ClusterMeta), nil
}

func putMetaTxn(tx *writeTxn, m *ClusterMeta) error {
	m.Key, m.ModifyIndex = metaKey, tx.index
	if err := tx.Insert(tableMeta, m); err != nil {
		return fmt.Errorf("write cluster meta: %w", err)
	}
	return tx.bump(tableMeta)
}

// Meta returns the cluster's meta row (defaults before bootstrap).
func (s *State) Meta(ws memdb.WatchSet) (uint64, *ClusterMeta, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	m, err := metaTxn(tx, ws)
	return maxIndexTxn(tx, ws, tableMeta), m, err
}

// allocateID hands out the next free number of a range: it skips numbers the
// index already holds (imported objects) and advances the counter past what
// it returns, so a number is never reused.
func allocateID(tx *writeTxn, table, index string, next func(*ClusterMeta) *uint32, end func(*ClusterMeta) uint32) (uint32, error) {
	cur, err := metaTxn(tx.Txn, nil)
	if err != nil {
		return 0, err
	}
	m := *cur
	n := next(&m)
	for ; *n <= end(&m) && *n != 0; *n++ {
		raw, err := tx.First(table, index, *n)
		if err != nil {
			return 0, fmt.Errorf("allocate from %s: %w", table, err)
		}
		if raw == nil {
			id := *n
			*n++
			return id, putMetaTxn(tx, &m)
		}
	}
	return 0, fmt.Errorf("%s: %w (next %d, end %d)", table, ErrRangeExhausted, *n, end(&m))
}

func allocateUID(tx *writeTxn) (uint32, error) {
	return allocateID(tx, tableUsers, "uid",
		func(m *ClusterMeta) *uint32 { return &m.UIDNext },
		func(m *ClusterMeta) uint32 { return m.UIDEnd })
}

func allocateGID(tx *writeTxn) (uint32, error) {
	return allocateID(tx, tableGroups, "gid",
		func(m *ClusterMeta) *uint32 { return &m.GIDNext },
		func(m *ClusterMeta) uint32 { return m.GIDEnd })
}
