package authority

// Rotation: which SSH CA keys are trusted, and CA key rotations planned as
// raftstore commands from CA records alone (no store access).
//
// A rotation never leaves a moment in which a certificate the active CA has
// just signed is refused, nor one in which a target has to trust a key that
// might sign before it has learned it:
//
//	stable    A active                      trusted: A
//	  │ Begin(B)     add B as next
//	staged    A active, B next (newer)      trusted: A, B   ← wait until every target trusts B
//	  │ Promote      B active, A demoted to next in one transaction
//	promoted  B active, A next (older)      trusted: B, A   ← wait until A's certificates expire
//	  │ Retire       A retired
//	stable    B active                      trusted: B
//
// Abort (staged → stable) retires the new key before it ever signed;
// Rollback (promoted → staged) makes the previous key the signer again.
// raftstore has one state, "next", for both the key waiting to sign and the
// key that signed before; the two are told apart by age (CreateIndex, then
// CreatedAt): a next key newer than the active one is waiting, an older one
// is the previous signer.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Step is one move of the rotation state machine.
type Step string

const (
	// Begin adds a new key as "next": trusted, not yet signing.
	Begin Step = "begin"
	// Promote makes the waiting key the signer and keeps the old one trusted.
	Promote Step = "promote"
	// Retire stops trusting the previous signer.
	Retire Step = "retire"
	// Abort retires a waiting key that never signed.
	Abort Step = "abort"
	// Rollback makes the previous signer the signer again; the key that
	// replaced it waits as "next" (Abort then drops it).
	Rollback Step = "rollback"
)

// Phase is where a kind and project's CAs are in a rotation.
type Phase string

const (
	// PhaseNone: no active CA. Creating the first one is not a rotation.
	PhaseNone Phase = "none"
	// PhaseStable: one active CA and nothing else trusted.
	PhaseStable Phase = "stable"
	// PhaseStaged: a new key is trusted but does not sign yet.
	PhaseStaged Phase = "staged"
	// PhasePromoted: the new key signs; the previous one is still trusted.
	PhasePromoted Phase = "promoted"
)

var (
	// ErrStep: the step does not apply in the current phase.
	ErrStep = errors.New("rotation step not possible now")
	// ErrRecords: the records are in a shape no rotation produces (two
	// active, two waiting, ages that cannot be told apart); fix by hand.
	ErrRecords = errors.New("CA records are not in a rotation state")
	// ErrNewKey: the key offered to Begin is unusable.
	ErrNewKey = errors.New("new CA key refused")
)

// State is the rotation state of one kind and project.
type State struct {
	Phase Phase
	// Active signs. Nil only in PhaseNone.
	Active *raftstore.CARecord
	// Waiting is the newer next key (PhaseStaged).
	Waiting *raftstore.CARecord
	// Previous is the older next key (PhasePromoted).
	Previous *raftstore.CARecord
}

// StateOf reads the rotation state of kind and project from records, which
// may hold other kinds and projects (they are ignored) and retired keys.
func StateOf(records []*raftstore.CARecord, kind raftstore.CAKind, project string) (State, error) {
	var st State
	var next []*raftstore.CARecord
	for _, r := range records {
		if r == nil || r.Kind != kind || r.Project != project {
			continue
		}
		switch r.State {
		case raftstore.CAActive:
			if st.Active != nil {
				return State{}, fmt.Errorf("%w: %s and %s are both active", ErrRecords, st.Active.ID, r.ID)
			}
			st.Active = r
		case raftstore.CANext:
			next = append(next, r)
		case raftstore.CARetired:
		default:
			return State{}, fmt.Errorf("%w: %s has state %q", ErrRecords, r.ID, r.State)
		}
	}
	if st.Active == nil {
		if len(next) > 0 {
			return State{}, fmt.Errorf("%w: %s is next but no CA is active", ErrRecords, next[0].ID)
		}
		st.Phase = PhaseNone
		return st, nil
	}
	for _, r := range next {
		switch c := compareAge(r, st.Active); {
		case c > 0 && st.Waiting == nil:
			st.Waiting = r
		case c < 0 && st.Previous == nil:
			st.Previous = r
		case c == 0:
			return State{}, fmt.Errorf("%w: %s and %s are the same age", ErrRecords, r.ID, st.Active.ID)
		default:
			return State{}, fmt.Errorf("%w: more than one next CA (%s)", ErrRecords, r.ID)
		}
	}
	switch {
	case st.Waiting != nil && st.Previous != nil:
		return State{}, fmt.Errorf("%w: %s waits to sign while %s is still trusted", ErrRecords, st.Waiting.ID, st.Previous.ID)
	case st.Waiting != nil:
		st.Phase = PhaseStaged
	case st.Previous != nil:
		st.Phase = PhasePromoted
	default:
		st.Phase = PhaseStable
	}
	return st, nil
}

// compareAge orders records by creation: raft index first (authoritative),
// then creation time when an index is missing.
func compareAge(a, b *raftstore.CARecord) int {
	if a.CreateIndex != 0 && b.CreateIndex != 0 {
		return cmp.Compare(a.CreateIndex, b.CreateIndex)
	}
	return a.CreatedAt.Compare(b.CreatedAt)
}

// Plan returns the commands that perform step on kind and project's CAs, to
// be applied in order. newKey is the key Begin adds (made with
// ca.NewSSHCAKeyAlg; its ID, PublicKey, SealedKey and Algorithm set) and must
// be nil for every other step. Plan reads nothing but its arguments: the
// caller reads records (raftstore.State.CAsFor) and applies the commands.
// Each command names the versions it was planned from (CAUpsert.Expect, the
// changed record's ModifyIndex, and ExpectActive, the active one's), so a
// command that races another change (two steps planned from the same read)
// fails in raft with ErrConflict rather than doing something else.
func Plan(records []*raftstore.CARecord, kind raftstore.CAKind, project string, step Step, newKey *raftstore.CARecord, now time.Time) ([]*raftstore.CAUpsert, error) {
	st, err := StateOf(records, kind, project)
	if err != nil {
		return nil, err
	}
	if step != Begin && newKey != nil {
		return nil, fmt.Errorf("%w: only %s takes a new key", ErrStep, Begin)
	}
	refuse := func(want Phase) error {
		return fmt.Errorf("%w: %s needs phase %s, the %s CAs of %q are %s", ErrStep, step, want, kind, project, st.Phase)
	}
	with := func(r *raftstore.CARecord, s raftstore.CAState) raftstore.CARecord {
		c := *r
		c.State = s
		return c
	}
	// Every step is planned from the active record and, but for Begin,
	// from the record it changes: both must be as read when it applies.
	var active *raftstore.CAVersion
	if st.Active != nil {
		active = &raftstore.CAVersion{ID: st.Active.ID, ModifyIndex: st.Active.ModifyIndex}
	}
	expect := func(r *raftstore.CARecord) *raftstore.CAVersion {
		return &raftstore.CAVersion{ID: r.ID, ModifyIndex: r.ModifyIndex}
	}
	switch step {
	case Begin:
		if st.Phase != PhaseStable {
			return nil, refuse(PhaseStable)
		}
		rec, err := checkNewKey(records, kind, project, newKey)
		if err != nil {
			return nil, err
		}
		return []*raftstore.CAUpsert{{Record: rec, Expect: &raftstore.CAVersion{ID: rec.ID}, ExpectActive: active, Now: now}}, nil
	case Promote:
		if st.Phase != PhaseStaged {
			return nil, refuse(PhaseStaged)
		}
		return []*raftstore.CAUpsert{{Record: with(st.Waiting, raftstore.CAActive), DemoteActiveTo: raftstore.CANext,
			Expect: expect(st.Waiting), ExpectActive: active, Now: now}}, nil
	case Retire:
		if st.Phase != PhasePromoted {
			return nil, refuse(PhasePromoted)
		}
		return []*raftstore.CAUpsert{{Record: with(st.Previous, raftstore.CARetired), Expect: expect(st.Previous), ExpectActive: active, Now: now}}, nil
	case Abort:
		if st.Phase != PhaseStaged {
			return nil, refuse(PhaseStaged)
		}
		return []*raftstore.CAUpsert{{Record: with(st.Waiting, raftstore.CARetired), Expect: expect(st.Waiting), ExpectActive: active, Now: now}}, nil
	case Rollback:
		if st.Phase != PhasePromoted {
			return nil, refuse(PhasePromoted)
		}
		return []*raftstore.CAUpsert{{Record: with(st.Previous, raftstore.CAActive), DemoteActiveTo: raftstore.CANext,
			Expect: expect(st.Previous), ExpectActive: active, Now: now}}, nil
	default:
		return nil, fmt.Errorf("%w: unknown step %q", ErrStep, step)
	}
}

// checkNewKey admits a new key for Begin: of this kind and project, with an
// ID and public key no record (retired ones included) has had.
func checkNewKey(records []*raftstore.CARecord, kind raftstore.CAKind, project string, k *raftstore.CARecord) (raftstore.CARecord, error) {
	if k == nil {
		return raftstore.CARecord{}, fmt.Errorf("%w: %s needs the new key", ErrNewKey, Begin)
	}
	rec := *k
	switch {
	case rec.Kind != kind || rec.Project != project:
		return rec, fmt.Errorf("%w: %s is a %s CA of %q, not %s of %q", ErrNewKey, rec.ID, rec.Kind, rec.Project, kind, project)
	case rec.ID == "" || rec.PublicKey == "" || len(rec.SealedKey) == 0:
		return rec, fmt.Errorf("%w: id, public key and sealed key are required", ErrNewKey)
	case rec.State != "" && rec.State != raftstore.CANext:
		return rec, fmt.Errorf("%w: a new key starts as next, not %s", ErrNewKey, rec.State)
	}
	for _, r := range records {
		if r == nil {
			continue
		}
		if r.ID == rec.ID {
			return rec, fmt.Errorf("%w: id %s is taken", ErrNewKey, rec.ID)
		}
		if r.PublicKey == rec.PublicKey {
			return rec, fmt.Errorf("%w: the key of %s again", ErrNewKey, r.ID)
		}
	}
	rec.State = raftstore.CANext
	rec.CreateIndex, rec.ModifyIndex = 0, 0
	return rec, nil
}

// TrustedUserCAKeys returns the authorized_keys lines (for sshd's
// TrustedUserCAKeys file) of every user CA in records that is not retired:
// the active one and the next one, so that the certificates of both verify
// throughout a rotation. Pass one project's records
// (raftstore.State.CAsFor(ws, raftstore.CAUser, project)): if records hold
// user CAs of more than one project it returns nil, since trusting them
// together would let one project's certificates open another's servers.
func TrustedUserCAKeys(records []*raftstore.CARecord) []string {
	project, seen := "", false
	for _, r := range records {
		if r == nil || r.Kind != raftstore.CAUser {
			continue
		}
		if seen && r.Project != project {
			return nil
		}
		project, seen = r.Project, true
	}
	if !seen {
		return nil
	}
	return TrustedCAKeys(records, raftstore.CAUser, project)
}

// TrustedCAKeys returns the public keys (authorized_keys lines) of kind and
// project's CAs that are not retired, the active one first, then by ID,
// without duplicates. For the host CA (kind CAHost, project "") these are the
// keys a known_hosts @cert-authority line must list during a rotation.
func TrustedCAKeys(records []*raftstore.CARecord, kind raftstore.CAKind, project string) []string {
	var trusted []*raftstore.CARecord
	for _, r := range records {
		if r != nil && r.Kind == kind && r.Project == project && (r.State == raftstore.CAActive || r.State == raftstore.CANext) && r.PublicKey != "" {
			trusted = append(trusted, r)
		}
	}
	slices.SortFunc(trusted, func(a, b *raftstore.CARecord) int {
		if (a.State == raftstore.CAActive) != (b.State == raftstore.CAActive) {
			if a.State == raftstore.CAActive {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var lines []string
	for _, r := range trusted {
		if !slices.Contains(lines, r.PublicKey) {
			lines = append(lines, r.PublicKey)
		}
	}
	return lines
}
