package raftstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"golang.org/x/crypto/ssh"
)

const tableBindings = "bindings"

// Binding ties an SSH public key (a device) to a user until ExpiresAt. A key
// presented at login that has a live binding is that user without another trip
// to the IdP.
type Binding struct {
	// Fingerprint is ssh.FingerprintSHA256 of PublicKey ("SHA256:...").
	Fingerprint string
	UserID      string
	// PublicKey is the key as an authorized_keys line.
	PublicKey     string
	ClientVersion string
	SourceAddr    string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	CreateIndex   uint64
	ModifyIndex   uint64
}

// sameContent reports whether b and o differ only in their raft indexes.
func (b *Binding) sameContent(o *Binding) bool {
	return b.Fingerprint == o.Fingerprint && b.UserID == o.UserID && b.PublicKey == o.PublicKey &&
		b.ClientVersion == o.ClientVersion && b.SourceAddr == o.SourceAddr &&
		b.CreatedAt.Equal(o.CreatedAt) && b.ExpiresAt.Equal(o.ExpiresAt)
}

func init() {
	registerTable(tableDef{
		name:   tableBindings,
		newObj: func() any { return new(Binding) },
		schema: &memdb.TableSchema{
			Name: tableBindings,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Fingerprint"}},
				"user": {Name: "user", Indexer: &memdb.StringFieldIndex{Field: "UserID"}},
			},
		},
	})
	registerCommand(BindingUpsertType, func() Command { return new(BindingUpsert) })
	registerCommand(BindingDeleteType, func() Command { return new(BindingDelete) })
}

// BindingUpsert binds a key to a user, or refreshes an existing binding. The
// user must exist and be active. A key bound to another user is re-bound: the
// latest identity proven with the device wins. Refreshing the same user's
// binding keeps its CreatedAt and CreateIndex.
type BindingUpsert struct {
	Binding Binding
	Now     time.Time
}

func (c *BindingUpsert) Type() MessageType { return BindingUpsertType }

func (c *BindingUpsert) Validate() error {
	b := &c.Binding
	switch {
	case !strings.HasPrefix(b.Fingerprint, "SHA256:"):
		return invalidf("binding fingerprint %q is not a SHA256 fingerprint", b.Fingerprint)
	case b.UserID == "":
		return invalidf("binding %s: user id is empty", b.Fingerprint)
	case c.Now.IsZero():
		return invalidf("binding %s: command time is missing", b.Fingerprint)
	case !b.ExpiresAt.After(c.Now):
		return invalidf("binding %s: expiry %s is not after %s", b.Fingerprint, b.ExpiresAt.Format(time.RFC3339), c.Now.Format(time.RFC3339))
	}
	// Parsing is deterministic, so checking the key here keeps a binding from
	// ever naming a fingerprint that its key does not have.
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(b.PublicKey))
	if err != nil {
		return invalidf("binding %s: public key: %v", b.Fingerprint, err)
	}
	if fp := ssh.FingerprintSHA256(pub); fp != b.Fingerprint {
		return invalidf("binding %s: the public key's fingerprint is %s", b.Fingerprint, fp)
	}
	return nil
}

func (c *BindingUpsert) apply(tx *writeTxn) (any, error) {
	b := c.Binding
	b.CreatedAt, b.ExpiresAt = b.CreatedAt.UTC(), b.ExpiresAt.UTC()
	rawUser, err := tx.First(tableUsers, "id", b.UserID)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", b.Fingerprint, err)
	}
	if rawUser == nil {
		return nil, fmt.Errorf("bind %s: user %s: %w", b.Fingerprint, b.UserID, ErrNotFound)
	}
	if u := rawUser.(*User); u.Status != UserActive {
		return nil, fmt.Errorf("bind %s: user %s is %s: %w", b.Fingerprint, b.UserID, u.Status, ErrConflict)
	}
	raw, err := tx.First(tableBindings, "id", b.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", b.Fingerprint, err)
	}
	if raw != nil && raw.(*Binding).UserID == b.UserID {
		old := raw.(*Binding)
		b.CreatedAt, b.CreateIndex, b.ModifyIndex = old.CreatedAt, old.CreateIndex, old.ModifyIndex
		if b.sameContent(old) {
			return old, nil // no-op: don't wake watchers
		}
	} else {
		if b.CreatedAt.IsZero() {
			b.CreatedAt = c.Now.UTC()
		}
		b.CreateIndex = tx.index
	}
	b.ModifyIndex = tx.index
	if err := tx.Insert(tableBindings, &b); err != nil {
		return nil, fmt.Errorf("insert binding %s: %w", b.Fingerprint, err)
	}
	return &b, tx.bump(tableBindings)
}

// BindingDelete removes bindings: the one with Fingerprint (only if it
// belongs to UserID, when that is set too), else every binding of UserID,
// else, with All, every binding there is. Its result is the number deleted
// (an int); deleting nothing is not an error and changes nothing.
type BindingDelete struct {
	Fingerprint string
	UserID      string
	All         bool
}

func (c *BindingDelete) Type() MessageType { return BindingDeleteType }

func (c *BindingDelete) Validate() error {
	switch {
	case c.All && (c.Fingerprint != "" || c.UserID != ""):
		return invalidf("binding delete: All cannot be combined with a fingerprint or user")
	case !c.All && c.Fingerprint == "" && c.UserID == "":
		return invalidf("binding delete: name a fingerprint, a user, or All")
	}
	return nil
}

func (c *BindingDelete) apply(tx *writeTxn) (any, error) {
	var n int
	var err error
	switch {
	case c.Fingerprint != "":
		n, err = deleteBindingTxn(tx, c.Fingerprint, c.UserID)
	case c.UserID != "":
		n, err = tx.DeleteAll(tableBindings, "user", c.UserID)
	default:
		n, err = tx.DeleteAll(tableBindings, "id")
	}
	if err != nil {
		return nil, fmt.Errorf("delete bindings: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := dropUnboundIdPSessionsTxn(tx); err != nil {
		return nil, fmt.Errorf("delete bindings: %w", err)
	}
	return n, tx.bump(tableBindings)
}

// deleteBindingTxn deletes the binding fp, when it exists and (with userID
// set) belongs to userID, and returns how many it deleted.
func deleteBindingTxn(tx *writeTxn, fp, userID string) (int, error) {
	raw, err := tx.First(tableBindings, "id", fp)
	if err != nil {
		return 0, err
	}
	if raw == nil || (userID != "" && raw.(*Binding).UserID != userID) {
		return 0, nil
	}
	if err := tx.Delete(tableBindings, raw); err != nil {
		return 0, err
	}
	return 1, nil
}

// BindingByFingerprint returns the binding of the key with fingerprint fp,
// expired or not, or nil.
func (s *State) BindingByFingerprint(ws memdb.WatchSet, fp string) (uint64, *Binding, error) {
	return getOne[Binding](s, ws, tableBindings, "id", fp)
}

// LiveBinding returns the binding of fp only while now is before its
// ExpiresAt; otherwise nil. It does not look at the user: the caller checks
// that the user is still active.
func (s *State) LiveBinding(ws memdb.WatchSet, fp string, now time.Time) (uint64, *Binding, error) {
	idx, b, err := s.BindingByFingerprint(ws, fp)
	if err != nil || b == nil || !now.Before(b.ExpiresAt) {
		return idx, nil, err
	}
	return idx, b, nil
}

// BindingRevoked reports whether the device binding a connection signed in
// with (the key's fingerprint fp and the raft index that created it, 0 if
// unknown) is gone for userID: deleted (bindings revoke, the user's
// deletion) or made anew since, for another user or after a revocation. A
// connection that signed in without a binding (fp "") has none to lose. It
// is the one rule the front door and the jump apply to live connections.
func (s *State) BindingRevoked(userID, fp string, createIndex uint64) bool {
	if fp == "" {
		return false
	}
	_, b, err := s.BindingByFingerprint(nil, fp)
	if err != nil {
		return false
	}
	return b == nil || b.UserID != userID || (createIndex != 0 && b.CreateIndex != createIndex)
}

// BindingsByUser lists the bindings of a user, expired or not.
func (s *State) BindingsByUser(ws memdb.WatchSet, userID string) (uint64, []*Binding, error) {
	return getAll[Binding](s, ws, tableBindings, "user", userID)
}

// Bindings lists every binding, ordered by fingerprint.
func (s *State) Bindings(ws memdb.WatchSet) (uint64, []*Binding, error) {
	return getAll[Binding](s, ws, tableBindings, "id")
}
