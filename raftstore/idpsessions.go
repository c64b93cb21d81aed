package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableIdPSessions = "idp_sessions"

// IdPSession is what re-validation keeps of one person's sign-in with the
// identity provider: their refresh token, sealed under the key-encryption
// key (gateway/ca; the raft log and snapshots never hold it in the clear),
// and how re-validation went. One per person; a later sign-in replaces it.
// The record goes when the person's last binding goes (BindingDelete), and
// re-validation drops it when the person has neither a live binding nor an
// open session, or the IdP refuses them.
type IdPSession struct {
	// UserID is the person (their IdP subject).
	UserID string
	// RefreshSealed is the refresh token sealed for the purpose
	// RefreshPurpose(UserID), so that one person's blob cannot be swapped
	// into another's record. Empty when the sign-in asked for a refresh
	// token and got none: nothing can be redeemed, and the unverified bound
	// runs from ConfirmedAt.
	RefreshSealed []byte `json:",omitempty"`
	// ConfirmedAt is when the IdP last vouched for the person: the browser
	// sign-in, or the last accepted refresh.
	ConfirmedAt time.Time
	// LastFailure is why the last refresh did not confirm the person (an
	// unreachable IdP, a rate limit), LastFailureAt when; Failures counts
	// failures since the last confirmation. LastRefused says the IdP did
	// answer, refusing, and re-validation held the refusal back (its
	// breaker): the next refusal is not taken for the echo of a lost
	// attempt.
	LastFailure   string    `json:",omitempty"`
	LastFailureAt time.Time `json:",omitzero"`
	Failures      int       `json:",omitempty"`
	LastRefused   bool      `json:",omitempty"`
	// Holds are the front doors (by holder id) with an open connection of
	// the person signed in without a key, and until when each vouches for
	// it (renewed while the connection lasts, released when it ends): such
	// a connection, an admin shell among them, keeps its person
	// re-validated though they have no binding.
	Holds       map[string]time.Time `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

// RefreshPurpose is the sealing purpose of a person's refresh token.
func RefreshPurpose(userID string) string { return "idp-refresh:" + userID }

func init() {
	registerTable(tableDef{
		name:   tableIdPSessions,
		newObj: func() any { return new(IdPSession) },
		schema: &memdb.TableSchema{
			Name: tableIdPSessions,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "UserID"}},
			},
		},
	})
	registerCommand(IdPSessionPutType, func() Command { return new(IdPSessionPut) })
	registerCommand(IdPSessionFailureType, func() Command { return new(IdPSessionFailure) })
	registerCommand(IdPSessionDeleteType, func() Command { return new(IdPSessionDelete) })
	registerCommand(IdPSessionHoldType, func() Command { return new(IdPSessionHold) })
}

// IdPSessionPut stores a person's sealed refresh token as confirmed at
// ConfirmedAt: a sign-in's (IfIndex 0: it replaces whatever was there) or a
// refresh's (IfIndex is the ModifyIndex of the record the refresh read; a
// record changed since, by a newer sign-in, is kept and ErrConflict
// returned, so an older token never overwrites a newer one). The person
// must exist and be active: no token is kept for anyone else. Failures are
// cleared. RefreshSealed may be empty (a sign-in given no refresh token).
type IdPSessionPut struct {
	UserID        string
	RefreshSealed []byte
	ConfirmedAt   time.Time
	IfIndex       uint64 `json:",omitempty"`
}

func (c *IdPSessionPut) Type() MessageType { return IdPSessionPutType }

func (c *IdPSessionPut) Validate() error {
	switch {
	case c.UserID == "":
		return invalidf("IdP session: user id is empty")
	case c.ConfirmedAt.IsZero():
		return invalidf("IdP session of %s: confirmation time is missing", c.UserID)
	}
	return nil
}

func (c *IdPSessionPut) apply(tx *writeTxn) (any, error) {
	rawUser, err := tx.First(tableUsers, "id", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	if rawUser == nil || rawUser.(*User).Status != UserActive {
		return nil, fmt.Errorf("IdP session of %s: %w: the person is not an active user", c.UserID, ErrConflict)
	}
	raw, err := tx.First(tableIdPSessions, "id", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	s := IdPSession{UserID: c.UserID, RefreshSealed: c.RefreshSealed, ConfirmedAt: c.ConfirmedAt.UTC(), CreateIndex: tx.index, ModifyIndex: tx.index}
	if raw != nil {
		old := raw.(*IdPSession)
		if c.IfIndex != 0 && old.ModifyIndex != c.IfIndex {
			return nil, fmt.Errorf("IdP session of %s: %w: changed since it was read", c.UserID, ErrConflict)
		}
		s.CreateIndex, s.Holds = old.CreateIndex, old.Holds
	} else if c.IfIndex != 0 {
		return nil, fmt.Errorf("IdP session of %s: %w: gone since it was read", c.UserID, ErrConflict)
	}
	if err := tx.Insert(tableIdPSessions, &s); err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	return &s, tx.bump(tableIdPSessions)
}

// IdPSessionFailure records a refresh that neither confirmed nor refused
// the person (the IdP unreachable, rate limited, an answer that could not
// be verified). A record changed since it was read (IfIndex) or gone is
// left as it is.
type IdPSessionFailure struct {
	UserID  string
	Reason  string
	IfIndex uint64
	// Refused: the IdP refused and the refusal was held back
	// (IdPSession.LastRefused).
	Refused bool `json:",omitempty"`
	Now     time.Time
}

func (c *IdPSessionFailure) Type() MessageType { return IdPSessionFailureType }

func (c *IdPSessionFailure) Validate() error {
	switch {
	case c.UserID == "":
		return invalidf("IdP session: user id is empty")
	case c.Now.IsZero():
		return invalidf("IdP session of %s: command time is missing", c.UserID)
	}
	return nil
}

func (c *IdPSessionFailure) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableIdPSessions, "id", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	if raw == nil || (c.IfIndex != 0 && raw.(*IdPSession).ModifyIndex != c.IfIndex) {
		return false, nil
	}
	s := *raw.(*IdPSession)
	s.LastFailure, s.LastFailureAt, s.Failures, s.ModifyIndex = BoundText(c.Reason, MaxClientText), c.Now.UTC(), s.Failures+1, tx.index
	s.LastRefused = c.Refused
	if err := tx.Insert(tableIdPSessions, &s); err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	return true, tx.bump(tableIdPSessions)
}

// IdPSessionDelete drops a person's record, and with it their refresh
// token. It returns whether there was one.
type IdPSessionDelete struct {
	UserID string
}

func (c *IdPSessionDelete) Type() MessageType { return IdPSessionDeleteType }

func (c *IdPSessionDelete) Validate() error {
	if c.UserID == "" {
		return invalidf("IdP session: user id is empty")
	}
	return nil
}

func (c *IdPSessionDelete) apply(tx *writeTxn) (any, error) {
	n, err := tx.DeleteAll(tableIdPSessions, "id", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("drop IdP session of %s: %w", c.UserID, err)
	}
	if n == 0 {
		return false, nil
	}
	return true, tx.bump(tableIdPSessions)
}

// IdPSessionHold sets (Until after the record's other holds are read) or
// releases (Until zero) the hold of front door Holder on a person's IdP
// session. Without a record it does nothing and returns false. A sign-in's
// IdPSessionPut keeps the holds; the record's ModifyIndex does not move.
type IdPSessionHold struct {
	UserID string
	Holder string
	Until  time.Time `json:",omitzero"`
}

func (c *IdPSessionHold) Type() MessageType { return IdPSessionHoldType }

func (c *IdPSessionHold) Validate() error {
	if c.UserID == "" || c.Holder == "" {
		return invalidf("IdP session hold: user id and holder are required")
	}
	return nil
}

func (c *IdPSessionHold) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableIdPSessions, "id", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	if raw == nil {
		return false, nil
	}
	s := *raw.(*IdPSession)
	holds := make(map[string]time.Time, len(s.Holds)+1)
	for k, v := range s.Holds {
		holds[k] = v
	}
	if c.Until.IsZero() {
		if _, ok := holds[c.Holder]; !ok {
			return true, nil
		}
		delete(holds, c.Holder)
	} else {
		holds[c.Holder] = c.Until.UTC()
	}
	if len(holds) == 0 {
		holds = nil
	}
	// ModifyIndex stays: it guards the token (IdPSessionPut's IfIndex), and
	// a renewed hold must not make a refresh's rotated token look stale.
	s.Holds = holds
	if err := tx.Insert(tableIdPSessions, &s); err != nil {
		return nil, fmt.Errorf("IdP session of %s: %w", c.UserID, err)
	}
	return true, tx.bump(tableIdPSessions)
}

// HeldAt reports whether a front door vouched, for a time after now, for an
// open keyless connection of the person.
func (s *IdPSession) HeldAt(now time.Time) bool {
	for _, until := range s.Holds {
		if now.Before(until) {
			return true
		}
	}
	return false
}

// dropUnboundIdPSessionsTxn drops the IdP sessions of people left without
// any binding, after bindings were deleted: a refresh token is kept only
// for someone Rampart still lets in without the browser. A record a front
// door holds (an open keyless connection) stays; re-validation drops it
// once the holds run out.
func dropUnboundIdPSessionsTxn(tx *writeTxn) error {
	it, err := tx.Get(tableIdPSessions, "id")
	if err != nil {
		return err
	}
	var gone []*IdPSession
	for raw := it.Next(); raw != nil; raw = it.Next() {
		s := raw.(*IdPSession)
		if len(s.Holds) > 0 {
			continue
		}
		b, err := tx.First(tableBindings, "user", s.UserID)
		if err != nil {
			return err
		}
		if b == nil {
			gone = append(gone, s)
		}
	}
	for _, s := range gone {
		if err := tx.Delete(tableIdPSessions, s); err != nil {
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return tx.bump(tableIdPSessions)
}

// IdPSessionByUser returns a person's IdP session, or nil.
func (s *State) IdPSessionByUser(ws memdb.WatchSet, userID string) (uint64, *IdPSession, error) {
	return getOne[IdPSession](s, ws, tableIdPSessions, "id", userID)
}

// IdPSessions lists every IdP session, ordered by user id.
func (s *State) IdPSessions(ws memdb.WatchSet) (uint64, []*IdPSession, error) {
	return getAll[IdPSession](s, ws, tableIdPSessions, "id")
}
