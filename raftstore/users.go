package raftstore

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableUsers = "users"

// UserStatus is the lifecycle state of a user.
type UserStatus string

const (
	UserActive   UserStatus = "active"
	UserDisabled UserStatus = "disabled"
	UserDeleted  UserStatus = "deleted"
)

func (s UserStatus) valid() bool {
	return s == UserActive || s == UserDisabled || s == UserDeleted
}

// User is a person known to the cluster, created just in time on first login
// (or pushed by SCIM). ID is stable (the IdP subject) and is who the person
// is; Login is what the IdP calls them, which two subjects may share (a
// recycled IdP user name); UnixName and UID are what they are on every
// server, unique across all users, deleted ones included.
type User struct {
	ID          string
	Login       string
	Email       string
	UnixName    string
	UID         uint32
	Status      UserStatus
	Groups      []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
	// AccountIndex is the raft index at which what makes the person's
	// account on a server (Login, UnixName, UID, Status) last changed;
	// GroupsSince the index at which they joined each of Groups. The FSM
	// keeps both, whatever a command says; with them the jump knows from
	// which index a server's desired state holds the account as it is now
	// (gateway/jump waits for it). Records written before these existed hold zeros.
	AccountIndex uint64            `json:",omitempty"`
	GroupsSince  map[string]uint64 `json:",omitempty"`
	// What the identity provider says about the person, beside sign-in:
	// ExternalID is the IdP's SCIM externalId; Sources are where the record
	// came from ("sign-in", "scim"; kept, never dropped, by upserts);
	// DisabledByIdP is set when the IdP deactivated the person (SCIM, or a
	// refused re-validation) rather than an administrator, and DisabledVia
	// says through which ("" on records written before it existed, taken as
	// SCIM's). Only UserSetStatus changes them, and the status.
	ExternalID    string      `json:",omitempty"`
	Sources       []string    `json:",omitempty"`
	DisabledByIdP bool        `json:",omitempty"`
	DisabledVia   DisabledVia `json:",omitempty"`
	// Groups is what grants and agents read: the union of the two sources
	// that name a person's groups, each of which replaces only its own.
	// TokenGroups are the groups of their last ID token (a UserUpsert's
	// Groups); SCIMGroups the groups SCIM made them a member of
	// (SCIMGroupPut). Records written before the split hold Groups alone,
	// which then are the token's (GroupsFromToken).
	TokenGroups []string `json:",omitempty"`
	SCIMGroups  []string `json:",omitempty"`
	// Subject is the IdP subject of a person whose record was made by SCIM
	// before their first sign-in (its ID is then SCIM's "scim-…"), once a
	// sign-in has adopted it; sign-ins record it on their own records too.
	// It never changes once set.
	Subject string `json:",omitempty"`
	// SCIMSeenAt is when SCIM last pushed this person (to the minute: a push
	// that changes nothing else rewrites it only when a minute old);
	// SCIMDeleted is set by a SCIM DELETE (the person is then deactivated
	// and SCIM no longer sees them, until it creates them again).
	SCIMSeenAt  time.Time `json:",omitempty"`
	SCIMDeleted bool      `json:",omitempty"`
	// EmailVerified says the identity provider vouches for Email: the ID
	// token it came from said email_verified, or SCIM (the IdP's own push)
	// wrote it. Only such an address matches one person's record to
	// another's (sign-in adopting SCIM's record, SCIM linking a sign-in's).
	EmailVerified bool `json:",omitempty"`
}

// GroupsFromToken are the groups the person's last ID token named.
func (u *User) GroupsFromToken() []string {
	if u.TokenGroups == nil && u.SCIMGroups == nil {
		return u.Groups // written before the split: all from the token
	}
	return u.TokenGroups
}

// PendingSCIM reports whether the record was made by SCIM and no sign-in
// has adopted it yet: only such a record is matched at sign-in by
// externalId or e-mail rather than by subject.
func (u *User) PendingSCIM() bool {
	return u.Subject == "" && slices.Contains(u.Sources, SourceSCIM) && !slices.Contains(u.Sources, SourceSignIn)
}

// unionGroups is the sorted union of a and b.
func unionGroups(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// groupSet is names sorted, without duplicates (nil for none).
func groupSet(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

// DisabledVia is the channel through which the identity provider
// deactivated a person (User.DisabledVia). Each undoes only its own: SCIM's
// active=true re-activates a person SCIM deactivated, never one a refused
// re-validation did; an administrator's enable undoes either.
type DisabledVia string

const (
	ViaSCIM         DisabledVia = "scim"
	ViaRevalidation DisabledVia = "revalidation"
)

// disabledVia is the channel of an IdP deactivation, records from before
// DisabledVia counting as SCIM's.
func (u *User) disabledVia() DisabledVia {
	if u.DisabledVia == "" {
		return ViaSCIM
	}
	return u.DisabledVia
}

// Where a user record came from (User.Sources).
const (
	SourceSignIn = "sign-in"
	SourceSCIM   = "scim"
)

func init() {
	registerTable(tableDef{
		name:   tableUsers,
		newObj: func() any { return new(User) },
		schema: &memdb.TableSchema{
			Name: tableUsers,
			Indexes: map[string]*memdb.IndexSchema{
				"id":        {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"login":     {Name: "login", Indexer: &memdb.StringFieldIndex{Field: "Login", Lowercase: true}},
				"unix_name": {Name: "unix_name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "UnixName"}},
				"uid":       {Name: "uid", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "UID"}},
				"group":     {Name: "group", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Groups"}},
				// The keys SCIM and sign-in match one person by (subject,
				// then externalId, then e-mail).
				"subject":     {Name: "subject", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Subject"}},
				"external_id": {Name: "external_id", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ExternalID"}},
				"email":       {Name: "email", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Email", Lowercase: true}},
			},
		},
	})
	registerCommand(UserUpsertType, func() Command { return new(UserUpsert) })
	registerCommand(UserSetStatusType, func() Command { return new(UserSetStatus) })
}

// UserUpsert creates or updates a user as a sign-in sees them. On create, a
// zero UID is allocated from the cluster's range; on update, UID,
// CreatedAt and the status (Status, DisabledByIdP, DisabledVia: only
// UserSetStatus changes them) are kept whatever the command says. User.Groups are the ID
// token's groups: they replace TokenGroups, SCIMGroups are kept, and the
// stored Groups are the union of both. With EnsureGroups, groups the user is
// in that do not exist yet are created (with a gid) in the same transaction,
// so a just-in-time login is one command.
type UserUpsert struct {
	User         User
	EnsureGroups bool
	Now          time.Time
}

func (c *UserUpsert) Type() MessageType { return UserUpsertType }

func (c *UserUpsert) Validate() error {
	u := &c.User
	switch {
	case u.ID == "":
		return invalidf("user id is empty")
	case u.Login == "":
		return invalidf("user %s: login is empty", u.ID)
	case u.UnixName == "":
		return invalidf("user %s: unix name is empty", u.ID)
	case u.Status != "" && !u.Status.valid():
		return invalidf("user %s: status %q is not active, disabled or deleted", u.ID, u.Status)
	case u.UID != 0 && u.UID < 1000:
		return invalidf("user %s: uid %d is below 1000", u.ID, u.UID)
	}
	for _, g := range u.Groups {
		if g == "" {
			return invalidf("user %s: empty group name", u.ID)
		}
	}
	return nil
}

func (c *UserUpsert) apply(tx *writeTxn) (any, error) {
	u := c.User
	existing, err := tx.First(tableUsers, "id", u.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert user %s: %w", u.ID, err)
	}
	var old *User
	if existing != nil {
		old = existing.(*User)
		u.Sources = append(slices.Clone(old.Sources), u.Sources...)
		// The status is UserSetStatus's alone: an upsert built from a read
		// made before a deactivation (a sign-in, a re-validation) must not
		// undo it.
		u.Status, u.DisabledByIdP, u.DisabledVia = old.Status, old.DisabledByIdP, old.DisabledVia
		if u.ExternalID == "" {
			u.ExternalID = old.ExternalID
		}
		if u.Subject == "" || old.Subject != "" {
			u.Subject = old.Subject
		}
		u.SCIMGroups, u.SCIMSeenAt, u.SCIMDeleted = old.SCIMGroups, old.SCIMSeenAt, old.SCIMDeleted
	}
	u.TokenGroups = groupSet(u.Groups)
	var ensure []string
	if c.EnsureGroups {
		ensure = u.TokenGroups
	}
	return putUserTxn(tx, old, u, ensure, false, c.Now)
}

// putUserTxn writes u over old (nil when u is new): on create it allocates a
// zero UID, on update it keeps UID and creation; it checks the unique
// fields and the shared-login rule, creates the groups of ensure, derives
// Groups (TokenGroups ∪ SCIMGroups) and the account indexes, and skips a
// write that changes nothing a reader sees unless force.
func putUserTxn(tx *writeTxn, old *User, u User, ensure []string, force bool, now time.Time) (any, error) {
	var err error
	if u.Status == "" {
		u.Status = UserActive
	}
	u.Groups = unionGroups(u.TokenGroups, u.SCIMGroups)
	if old != nil {
		u.UID, u.CreatedAt, u.CreateIndex = old.UID, old.CreatedAt, old.CreateIndex
	} else {
		u.CreatedAt, u.CreateIndex = now, tx.index
		if u.UID == 0 {
			if u.UID, err = allocateUID(tx); err != nil {
				return nil, err
			}
		}
	}
	unique := []any{"unix_name", u.UnixName, "uid", u.UID}
	if u.ExternalID != "" {
		unique = append(unique, "external_id", u.ExternalID)
	}
	if u.Subject != "" {
		unique = append(unique, "subject", u.Subject)
	}
	if err := checkUniqueTxn(tx, tableUsers, u.ID, func(o any) string { return o.(*User).ID }, unique...); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Login, err)
	}
	// A person never gets a project's shared account as theirs: every member
	// of that project could log in as it. Checked when the name is given out
	// (a name held from before this rule was added is not taken away; the
	// jump refuses it as a shared login instead).
	if old == nil || old.UnixName != u.UnixName {
		p, err := sharedLoginProjectTxn(tx.Txn, u.UnixName)
		if err != nil {
			return nil, err
		}
		if p != "" {
			return nil, fmt.Errorf("user %s: %w: unix name %s is a shared login of project %s", u.Login, ErrConflict, u.UnixName, p)
		}
	}
	slices.Sort(u.Sources)
	u.Sources = slices.Compact(u.Sources)
	for _, g := range ensure {
		if err := ensureGroupTxn(tx, g, now); err != nil {
			return nil, err
		}
	}
	if old != nil && !force && sameUser(old, &u) {
		return old, nil // no-op: don't wake watchers
	}
	u.UpdatedAt, u.ModifyIndex = now, tx.index
	u.AccountIndex, u.GroupsSince = accountIndexes(old, &u, tx.index)
	if err := tx.Insert(tableUsers, &u); err != nil {
		return nil, fmt.Errorf("insert user %s: %w", u.ID, err)
	}
	return &u, tx.bump(tableUsers)
}

// accountIndexes derives u's AccountIndex and GroupsSince at index from the
// record it replaces (nil when u is new).
func accountIndexes(old, u *User, index uint64) (uint64, map[string]uint64) {
	account := index
	if old != nil && old.Login == u.Login && old.UnixName == u.UnixName && old.UID == u.UID && old.Status == u.Status {
		account = old.AccountIndex
	}
	var since map[string]uint64
	for _, g := range u.Groups {
		if since == nil {
			since = map[string]uint64{}
		}
		since[g] = index
		if old != nil && slices.Contains(old.Groups, g) {
			since[g] = old.GroupsSince[g]
		}
	}
	return account, since
}

// sameUser reports whether an upsert would change nothing a reader sees.
func sameUser(a, b *User) bool {
	return a.Login == b.Login && a.Email == b.Email && a.UnixName == b.UnixName &&
		a.UID == b.UID && a.Status == b.Status && slices.Equal(a.Groups, b.Groups) &&
		a.ExternalID == b.ExternalID && slices.Equal(a.Sources, b.Sources) && a.DisabledByIdP == b.DisabledByIdP && a.DisabledVia == b.DisabledVia &&
		slices.Equal(a.GroupsFromToken(), b.GroupsFromToken()) && slices.Equal(a.SCIMGroups, b.SCIMGroups) &&
		a.Subject == b.Subject && a.SCIMDeleted == b.SCIMDeleted && a.EmailVerified == b.EmailVerified
}

// checkUniqueTxn refuses a write whose unique fields (given as index, value
// pairs) already belong to another object of table than the one with id.
func checkUniqueTxn(tx *writeTxn, table, id string, idOf func(any) string, pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		index := pairs[i].(string)
		raw, err := tx.First(table, index, pairs[i+1])
		if err != nil {
			return fmt.Errorf("check %s.%s: %w", table, index, err)
		}
		if raw != nil && idOf(raw) != id {
			return fmt.Errorf("%w: %s %v already belongs to %s", ErrConflict, index, pairs[i+1], idOf(raw))
		}
	}
	return nil
}

// UserSetStatus enables, disables or marks a user deleted. A deleted user
// keeps its row (and its uid, which is never reused).
//
// An IdP disable (ByIdP) applies only to an active person: one an
// administrator disabled stays the administrator's (the IdP could
// otherwise undo it later), one the IdP disabled keeps its channel, a
// deleted one stays deleted; the command is then a no-op. With
// IfDisabledVia the change applies only to a person the IdP disabled
// through that channel; any other is left as it is and ErrConflict
// returned (the state was read, then changed, e.g. by an administrator).
type UserSetStatus struct {
	ID     string
	Status UserStatus
	// ByIdP marks a disable as the identity provider's (User.DisabledByIdP)
	// through Via (User.DisabledVia); any other status change clears both.
	ByIdP bool        `json:",omitempty"`
	Via   DisabledVia `json:",omitempty"`
	// IfDisabledVia makes the change conditional (see above).
	IfDisabledVia DisabledVia `json:",omitempty"`
	Now           time.Time
}

func (c *UserSetStatus) Type() MessageType { return UserSetStatusType }

func (c *UserSetStatus) Validate() error {
	if c.ID == "" {
		return invalidf("user id is empty")
	}
	if !c.Status.valid() {
		return invalidf("status %q is not active, disabled or deleted", c.Status)
	}
	for _, v := range []DisabledVia{c.Via, c.IfDisabledVia} {
		if v != "" && v != ViaSCIM && v != ViaRevalidation {
			return invalidf("user %s: IdP channel %q is not %s or %s", c.ID, v, ViaSCIM, ViaRevalidation)
		}
	}
	return nil
}

func (c *UserSetStatus) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableUsers, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("set status of user %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("user %s: %w", c.ID, ErrNotFound)
	}
	u := *raw.(*User)
	if c.IfDisabledVia != "" && (u.Status != UserDisabled || !u.DisabledByIdP || u.disabledVia() != c.IfDisabledVia) {
		return nil, fmt.Errorf("user %s: %w: not disabled through %s", c.ID, ErrConflict, c.IfDisabledVia)
	}
	byIdP := c.ByIdP && c.Status == UserDisabled
	if byIdP && u.Status != UserActive {
		return &u, nil // the IdP takes over no one else's disable
	}
	via := DisabledVia("")
	if byIdP {
		via = c.Via
	}
	if u.Status == c.Status && u.DisabledByIdP == byIdP && u.DisabledVia == via {
		return &u, nil // no-op: don't wake watchers
	}
	u.DisabledByIdP, u.DisabledVia = byIdP, via
	u.Status, u.UpdatedAt, u.ModifyIndex, u.AccountIndex = c.Status, c.Now, tx.index, tx.index
	if err := tx.Insert(tableUsers, &u); err != nil {
		return nil, fmt.Errorf("update user %s: %w", c.ID, err)
	}
	return &u, tx.bump(tableUsers)
}

// UserByID returns the user with id, or nil.
func (s *State) UserByID(ws memdb.WatchSet, id string) (uint64, *User, error) {
	return getOne[User](s, ws, tableUsers, "id", id)
}

// UserByLogin returns the first user (by id) with login (case-insensitive),
// or nil. Logins are not unique: UsersByLogin lists them all.
func (s *State) UserByLogin(ws memdb.WatchSet, login string) (uint64, *User, error) {
	return getOne[User](s, ws, tableUsers, "login", login)
}

// UsersByLogin lists every user with login (case-insensitive).
func (s *State) UsersByLogin(ws memdb.WatchSet, login string) (uint64, []*User, error) {
	return getAll[User](s, ws, tableUsers, "login", login)
}

// UserByUnixName returns the user with that unix name, or nil.
func (s *State) UserByUnixName(ws memdb.WatchSet, name string) (uint64, *User, error) {
	return getOne[User](s, ws, tableUsers, "unix_name", name)
}

// Users lists every user, ordered by id.
func (s *State) Users(ws memdb.WatchSet) (uint64, []*User, error) {
	return getAll[User](s, ws, tableUsers, "id")
}

// UsersInGroup lists the users that are members of group.
func (s *State) UsersInGroup(ws memdb.WatchSet, group string) (uint64, []*User, error) {
	return getAll[User](s, ws, tableUsers, "group", group)
}

// UserBySubject returns the person whose IdP subject is sub: the record a
// sign-in adopted for it, else the record whose id is sub (the subject is
// the id of a record sign-in made) unless that record is SCIM's, awaiting
// adoption, or holds another subject. nil when there is none.
func (s *State) UserBySubject(ws memdb.WatchSet, sub string) (uint64, *User, error) {
	idx, u, err := getOne[User](s, ws, tableUsers, "subject", sub)
	if err != nil || u != nil {
		return idx, u, err
	}
	idx, u, err = s.UserByID(ws, sub)
	if err != nil || u == nil || u.PendingSCIM() || (u.Subject != "" && u.Subject != sub) {
		return idx, nil, err
	}
	return idx, u, nil
}

// UserByExternalID returns the user SCIM knows by externalId, or nil.
func (s *State) UserByExternalID(ws memdb.WatchSet, externalID string) (uint64, *User, error) {
	return getOne[User](s, ws, tableUsers, "external_id", externalID)
}

// UsersByEmail lists the users with that e-mail address (case-insensitive).
func (s *State) UsersByEmail(ws memdb.WatchSet, email string) (uint64, []*User, error) {
	return getAll[User](s, ws, tableUsers, "email", email)
}
