package raftstore

import (
	"bytes"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/rampart-ssh/rampart/api"
	"golang.org/x/crypto/ssh"
)

const tableCA = "ca"

// CAKind says what a CA signs.
type CAKind string

const (
	// CAUser signs user certificates; there is one chain per project.
	CAUser CAKind = "user"
	// CAHost signs the host certificates of targets and of the per-target
	// inner servers of the jump (one per cluster).
	CAHost CAKind = "host"
	// CANodeHost signs only the host certificates of the nodes' own front
	// doors (one per cluster): nothing a target enrolls with is signed by
	// it, so no target can be made to look like a bastion.
	CANodeHost CAKind = "node-host"
	// CATLS is the cluster's TLS CA (one per cluster).
	CATLS CAKind = "tls"
)

func (k CAKind) valid() bool { return k == CAUser || k == CAHost || k == CANodeHost || k == CATLS }

// CAState is where a CA is in its rotation. "next" is trusted alongside the
// active CA but signs nothing yet; "active" signs; "retired" is kept for the
// record and trusted no more.
type CAState string

const (
	CANext    CAState = "next"
	CAActive  CAState = "active"
	CARetired CAState = "retired"
)

func (s CAState) valid() bool { return s == CANext || s == CAActive || s == CARetired }

// CARecord is one CA key pair. The private key is sealed under the
// key-encryption key, which never enters raft.
type CARecord struct {
	ID   string
	Kind CAKind
	// Project is set for user CAs only.
	Project   string
	Algorithm string
	// PublicKey is an authorized_keys line (user, host) or a PEM certificate
	// (tls).
	PublicKey   string
	SealedKey   []byte
	State       CAState
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

// kindProjectIndex indexes CARecord by kind and project together. memdb's
// CompoundIndex cannot: its StringFieldIndex treats the empty project of host
// and TLS CAs as missing, so such rows could never be looked up by (kind, "").
type kindProjectIndex struct{}

func kindProjectKey(kind, project string) []byte {
	return []byte(kind + "\x00" + project + "\x00")
}

func (kindProjectIndex) FromObject(raw any) (bool, []byte, error) {
	r, ok := raw.(*CARecord)
	if !ok {
		return false, nil, fmt.Errorf("kind_project index: %T is not a CA record", raw)
	}
	return true, kindProjectKey(string(r.Kind), r.Project), nil
}

func (kindProjectIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("kind_project index: want kind and project, got %d arguments", len(args))
	}
	var kind string
	switch k := args[0].(type) {
	case CAKind:
		kind = string(k)
	case string:
		kind = k
	default:
		return nil, fmt.Errorf("kind_project index: kind is a %T", args[0])
	}
	project, ok := args[1].(string)
	if !ok {
		return nil, fmt.Errorf("kind_project index: project is a %T", args[1])
	}
	return kindProjectKey(kind, project), nil
}

func init() {
	registerTable(tableDef{
		name:   tableCA,
		newObj: func() any { return new(CARecord) },
		schema: &memdb.TableSchema{
			Name: tableCA,
			Indexes: map[string]*memdb.IndexSchema{
				"id":           {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"kind_project": {Name: "kind_project", Indexer: kindProjectIndex{}},
			},
		},
	})
	registerCommand(CAUpsertType, func() Command { return new(CAUpsert) })
	registerCommand(CADeleteType, func() Command { return new(CADelete) })
}

// CAUpsert adds a CA or changes its state (or its sealed key, when the
// key-encryption key is rotated). Its kind, project and public key never
// change: a new key is a new record.
//
// At most one record per kind and project is active. Making a record active
// while another is refuses with ErrConflict, unless DemoteActiveTo says what
// the current one becomes (CANext to keep trusting it, CARetired to stop);
// both changes then happen in one transaction, so there is never a moment
// with two active CAs or none. A rotation is: add the new key as CANext,
// wait for every target to trust it, upsert it as CAActive with
// DemoteActiveTo CANext, later retire the old one.
//
// Whatever the command says, the state machine keeps a chain (the records
// of one kind and project) whole, refusing with ErrConflict:
//   - an active record stops being active only when another one is made
//     active in its place (DemoteActiveTo), so a chain that has a signer
//     keeps one;
//   - a retired record stays retired: a key that was let go (perhaps
//     because it leaked) is never trusted again;
//   - a change that would give a chain a second next record.
//
// A step planned from a read of the chain names what it read in Expect and
// ExpectActive, and is refused with ErrConflict when the chain has moved
// since, so two steps planned from the same read cannot both apply.
type CAUpsert struct {
	Record         CARecord
	DemoteActiveTo CAState
	// Expect, when set, is the version of Record.ID the change was planned
	// from: its ModifyIndex, 0 for a record that must not exist yet.
	Expect *CAVersion `json:",omitempty"`
	// ExpectActive, when set, is the chain's active record the change was
	// planned from: that record must still be active at that ModifyIndex.
	ExpectActive *CAVersion `json:",omitempty"`
	Now          time.Time
}

// CAVersion names one version of a CA record, for CAUpsert's expectations.
type CAVersion struct {
	ID          string
	ModifyIndex uint64
}

func (c *CAUpsert) Type() MessageType { return CAUpsertType }

func (c *CAUpsert) Validate() error {
	r := &c.Record
	switch {
	case r.ID == "":
		return invalidf("ca id is empty")
	case !r.Kind.valid():
		return invalidf("ca %s: kind %q is not user, host or tls", r.ID, r.Kind)
	case r.Kind == CAUser && r.Project == "":
		return invalidf("ca %s: a user CA needs a project", r.ID)
	case r.Kind != CAUser && r.Project != "":
		return invalidf("ca %s: a %s CA belongs to no project", r.ID, r.Kind)
	case r.Algorithm == "":
		return invalidf("ca %s: algorithm is empty", r.ID)
	case len(r.SealedKey) == 0:
		return invalidf("ca %s: sealed key is empty", r.ID)
	case !r.State.valid():
		return invalidf("ca %s: state %q is not next, active or retired", r.ID, r.State)
	case c.DemoteActiveTo != "" && c.DemoteActiveTo != CANext && c.DemoteActiveTo != CARetired:
		return invalidf("ca %s: the active CA can be demoted to next or retired, not %q", r.ID, c.DemoteActiveTo)
	case c.DemoteActiveTo != "" && r.State != CAActive:
		return invalidf("ca %s: demoting the active CA needs this one to become active", r.ID)
	case c.Expect != nil && c.Expect.ID != r.ID:
		return invalidf("ca %s: the expected version is of %s", r.ID, c.Expect.ID)
	case c.ExpectActive != nil && (c.ExpectActive.ID == "" || c.ExpectActive.ModifyIndex == 0):
		return invalidf("ca %s: the expected active CA needs an id and a modify index", r.ID)
	case c.Now.IsZero():
		return invalidf("ca %s: command time is missing", r.ID)
	}
	return validateCAPublicKey(r)
}

// validateCAPublicKey checks that the public half parses as its kind says.
func validateCAPublicKey(r *CARecord) error {
	if r.Kind == CATLS {
		if _, err := api.ParseCertPEM([]byte(r.PublicKey)); err != nil {
			return invalidf("ca %s: public key is not a PEM certificate: %v", r.ID, err)
		}
		return nil
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.PublicKey)); err != nil {
		return invalidf("ca %s: public key: %v", r.ID, err)
	}
	return nil
}

func (c *CAUpsert) apply(tx *writeTxn) (any, error) {
	r := c.Record
	r.SealedKey = bytes.Clone(r.SealedKey)
	raw, err := tx.First(tableCA, "id", r.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert ca %s: %w", r.ID, err)
	}
	chain, err := caChainTxn(tx, r.Kind, r.Project)
	if err != nil {
		return nil, fmt.Errorf("upsert ca %s: %w", r.ID, err)
	}
	var old *CARecord
	if raw != nil {
		old = raw.(*CARecord)
	}
	if err := c.checkExpected(old, chain); err != nil {
		return nil, err
	}
	if old != nil {
		switch {
		case old.Kind != r.Kind || old.Project != r.Project:
			return nil, fmt.Errorf("%w: ca %s is the %s CA of %q; kind and project cannot change", ErrConflict, r.ID, old.Kind, old.Project)
		case old.PublicKey != r.PublicKey:
			return nil, fmt.Errorf("%w: ca %s: its public key cannot change (add a new CA)", ErrConflict, r.ID)
		case old.State == r.State && old.Algorithm == r.Algorithm && bytes.Equal(old.SealedKey, r.SealedKey):
			return old, nil // no-op: don't wake watchers
		case old.State == CARetired && r.State != CARetired:
			return nil, fmt.Errorf("%w: ca %s is retired, and a retired CA is never trusted again (add a new CA)", ErrConflict, r.ID)
		case old.State == CAActive && r.State != CAActive:
			return nil, fmt.Errorf("%w: ca %s is the active %s CA of %q; it stops signing only when another one is made active in its place", ErrConflict, r.ID, r.Kind, r.Project)
		}
		r.CreatedAt, r.CreateIndex = old.CreatedAt, old.CreateIndex
	} else {
		r.CreatedAt, r.CreateIndex = c.Now.UTC(), tx.index
	}
	if r.State == CANext {
		for _, o := range chain {
			if o.State == CANext && o.ID != r.ID {
				return nil, fmt.Errorf("%w: ca %s: %s is already the next %s CA of %q (one rotation at a time)", ErrConflict, r.ID, o.ID, r.Kind, r.Project)
			}
		}
	}
	if r.State == CAActive {
		if err := c.demoteActiveTxn(tx, &r, chain); err != nil {
			return nil, err
		}
	}
	r.ModifyIndex = tx.index
	if err := tx.Insert(tableCA, &r); err != nil {
		return nil, fmt.Errorf("insert ca %s: %w", r.ID, err)
	}
	return &r, tx.bump(tableCA)
}

// checkExpected refuses the change with ErrConflict when the record (old)
// or the chain's active record is not what the command was planned from.
func (c *CAUpsert) checkExpected(old *CARecord, chain []*CARecord) error {
	if e := c.Expect; e != nil {
		var at uint64
		if old != nil {
			at = old.ModifyIndex
		}
		if at != e.ModifyIndex {
			return fmt.Errorf("%w: ca %s changed since the change was planned (modify index %d, planned at %d)", ErrConflict, e.ID, at, e.ModifyIndex)
		}
	}
	if e := c.ExpectActive; e != nil {
		var active *CARecord
		for _, o := range chain {
			if o.State == CAActive {
				active = o
			}
		}
		if active == nil || active.ID != e.ID || active.ModifyIndex != e.ModifyIndex {
			return fmt.Errorf("%w: the active CA changed since the change was planned (with ca %s active at modify index %d)", ErrConflict, e.ID, e.ModifyIndex)
		}
	}
	return nil
}

// caChainTxn reads every record of a kind and project.
func caChainTxn(tx *writeTxn, kind CAKind, project string) ([]*CARecord, error) {
	it, err := tx.Get(tableCA, "kind_project", kind, project)
	if err != nil {
		return nil, err
	}
	var chain []*CARecord
	for raw := it.Next(); raw != nil; raw = it.Next() {
		chain = append(chain, raw.(*CARecord))
	}
	return chain, nil
}

// demoteActiveTxn moves the active CA of r's kind and project, if it is
// another record, to DemoteActiveTo, or refuses when the command names none.
func (c *CAUpsert) demoteActiveTxn(tx *writeTxn, r *CARecord, chain []*CARecord) error {
	for _, o := range chain {
		if o.State != CAActive || o.ID == r.ID {
			continue
		}
		if c.DemoteActiveTo == "" {
			return fmt.Errorf("%w: ca %s: %s is already the active %s CA of %q (set DemoteActiveTo to replace it)", ErrConflict, r.ID, o.ID, r.Kind, r.Project)
		}
		if c.DemoteActiveTo == CANext {
			for _, n := range chain {
				if n.State == CANext && n.ID != r.ID {
					return fmt.Errorf("%w: ca %s: demoting %s to next would make it a second next %s CA of %q beside %s", ErrConflict, r.ID, o.ID, r.Kind, r.Project, n.ID)
				}
			}
		}
		d := *o
		d.State, d.ModifyIndex = c.DemoteActiveTo, tx.index
		if err := tx.Insert(tableCA, &d); err != nil {
			return fmt.Errorf("demote ca %s: %w", d.ID, err)
		}
	}
	return nil
}

// CADelete removes a CA record. The active CA cannot be deleted: demote it
// first, so that the kind and project are never left without a signer by
// accident.
type CADelete struct {
	ID string
}

func (c *CADelete) Type() MessageType { return CADeleteType }

func (c *CADelete) Validate() error {
	if c.ID == "" {
		return invalidf("ca id is empty")
	}
	return nil
}

func (c *CADelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableCA, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("delete ca %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("ca %s: %w", c.ID, ErrNotFound)
	}
	if raw.(*CARecord).State == CAActive {
		return nil, fmt.Errorf("%w: ca %s is active; demote it before deleting it", ErrConflict, c.ID)
	}
	if err := tx.Delete(tableCA, raw); err != nil {
		return nil, fmt.Errorf("delete ca %s: %w", c.ID, err)
	}
	return nil, tx.bump(tableCA)
}

// CAByID returns the CA record, or nil.
func (s *State) CAByID(ws memdb.WatchSet, id string) (uint64, *CARecord, error) {
	return getOne[CARecord](s, ws, tableCA, "id", id)
}

// CAsFor lists the CAs of a kind and project in every state (project is ""
// for host and TLS CAs), ordered by id.
func (s *State) CAsFor(ws memdb.WatchSet, kind CAKind, project string) (uint64, []*CARecord, error) {
	return getAll[CARecord](s, ws, tableCA, "kind_project", kind, project)
}

// ActiveCA returns the active CA of a kind and project, or nil.
func (s *State) ActiveCA(ws memdb.WatchSet, kind CAKind, project string) (uint64, *CARecord, error) {
	idx, all, err := s.CAsFor(ws, kind, project)
	if err != nil {
		return idx, nil, err
	}
	for _, r := range all {
		if r.State == CAActive {
			return idx, r, nil
		}
	}
	return idx, nil, nil
}

// CAs lists every CA record, ordered by id.
func (s *State) CAs(ws memdb.WatchSet) (uint64, []*CARecord, error) {
	return getAll[CARecord](s, ws, tableCA, "id")
}
