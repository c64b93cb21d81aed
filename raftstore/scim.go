package raftstore

import (
	"fmt"
	"slices"
	"time"
)

// What SCIM writes: people as the IdP pushes them (UserSCIMPut) and the
// memberships of the groups it manages (SCIMGroupPut). Neither touches what
// sign-in owns (a person's token groups, their subject), just as a sign-in
// never touches SCIM's groups.

// scimSeenEvery is how stale User.SCIMSeenAt may grow before a push that
// changes nothing else rewrites it (each write wakes every watcher).
const scimSeenEvery = time.Minute

func init() {
	registerCommand(UserSCIMPutType, func() Command { return new(UserSCIMPut) })
	registerCommand(SCIMGroupPutType, func() Command { return new(SCIMGroupPut) })
}

// UserSCIMPut creates or updates a person as SCIM pushes them: Login,
// Email (which the IdP vouches for by pushing it: EmailVerified) and
// ExternalID from User (a new record also takes ID and UnixName;
// an existing one keeps its unix name, uid, status, groups and subject).
// An externalId, once set, never changes (ErrConflict): a push cannot move
// one person's record to another. Deleted records a SCIM DELETE (the
// record leaves SCIM's view; the status is control's to change) or, false,
// brings it back.
type UserSCIMPut struct {
	User    User
	Deleted bool `json:",omitempty"`
	Now     time.Time
}

func (c *UserSCIMPut) Type() MessageType { return UserSCIMPutType }

func (c *UserSCIMPut) Validate() error {
	switch u := &c.User; {
	case u.ID == "":
		return invalidf("user id is empty")
	case u.Login == "":
		return invalidf("user %s: login is empty", u.ID)
	case c.Now.IsZero():
		return invalidf("user %s: command time is missing", u.ID)
	}
	return nil
}

func (c *UserSCIMPut) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableUsers, "id", c.User.ID)
	if err != nil {
		return nil, fmt.Errorf("scim put user %s: %w", c.User.ID, err)
	}
	if raw == nil {
		if c.User.UnixName == "" {
			return nil, invalidf("user %s: unix name is empty", c.User.ID)
		}
		u := User{ID: c.User.ID, Login: c.User.Login, Email: c.User.Email, ExternalID: c.User.ExternalID, UnixName: c.User.UnixName,
			UID: c.User.UID, Status: UserActive, Sources: []string{SourceSCIM}, SCIMSeenAt: c.Now, SCIMDeleted: c.Deleted,
			EmailVerified: c.User.Email != ""}
		return putUserTxn(tx, nil, u, nil, true, c.Now)
	}
	old := raw.(*User)
	if old.Status == UserDeleted {
		return nil, fmt.Errorf("user %s: %w: the record is deleted", old.Login, ErrConflict)
	}
	u := *old
	u.Login, u.Email, u.SCIMDeleted = c.User.Login, c.User.Email, c.Deleted
	u.EmailVerified = u.Email != "" // the IdP's own push vouches for the address
	u.TokenGroups = old.GroupsFromToken()
	u.Sources = append(slices.Clone(old.Sources), SourceSCIM)
	slices.Sort(u.Sources)
	u.Sources = slices.Compact(u.Sources)
	if x := c.User.ExternalID; x != "" && x != old.ExternalID {
		if old.ExternalID != "" {
			return nil, fmt.Errorf("user %s: %w: its externalId is %q and never changes", old.Login, ErrConflict, old.ExternalID)
		}
		u.ExternalID = x
	}
	if sameUser(old, &u) && c.Now.Sub(old.SCIMSeenAt) < scimSeenEvery {
		return old, nil // no-op: don't wake watchers
	}
	u.SCIMSeenAt = c.Now
	return putUserTxn(tx, old, u, nil, true, c.Now)
}

// SCIMGroupPut sets the SCIM members of a group (user ids): all of them
// (Replace with Members), or Add and Remove. Linked says whether SCIM
// manages the group after the command: a group it creates or links is
// created here if need be (with a gid); one it deletes (Linked false)
// loses every SCIM member and leaves SCIM's view, and stays a group (its
// gid, its token members and its grants are kept). Each member's Groups
// become their token groups and SCIM groups together.
type SCIMGroupPut struct {
	Group      string
	ExternalID string `json:",omitempty"`
	Linked     bool
	Replace    bool     `json:",omitempty"`
	Members    []string `json:",omitempty"`
	Add        []string `json:",omitempty"`
	Remove     []string `json:",omitempty"`
	Now        time.Time
}

func (c *SCIMGroupPut) Type() MessageType { return SCIMGroupPutType }

func (c *SCIMGroupPut) Validate() error {
	if c.Group == "" {
		return invalidf("group name is empty")
	}
	if c.Now.IsZero() {
		return invalidf("group %s: command time is missing", c.Group)
	}
	for _, ids := range [][]string{c.Members, c.Add, c.Remove} {
		if slices.Contains(ids, "") {
			return invalidf("group %s: empty member id", c.Group)
		}
	}
	return nil
}

func (c *SCIMGroupPut) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableGroups, "id", c.Group)
	if err != nil {
		return nil, fmt.Errorf("scim put group %s: %w", c.Group, err)
	}
	var g *Group
	if raw == nil {
		if !c.Linked {
			return nil, fmt.Errorf("group %s: %w", c.Group, ErrNotFound)
		}
		if g, err = insertGroupTxn(tx, c.Group, 0, c.Now); err != nil {
			return nil, err
		}
	} else {
		g = raw.(*Group)
	}
	if g.SCIM != c.Linked || (c.ExternalID != "" && g.ExternalID != c.ExternalID) {
		ng := *g
		ng.SCIM, ng.ModifyIndex = c.Linked, tx.index
		if c.ExternalID != "" {
			ng.ExternalID = c.ExternalID
		}
		if err := tx.Insert(tableGroups, &ng); err != nil {
			return nil, fmt.Errorf("update group %s: %w", c.Group, err)
		}
		if err := tx.bump(tableGroups); err != nil {
			return nil, err
		}
		g = &ng
	}
	// The SCIM members now, and the ones wanted.
	it, err := tx.Get(tableUsers, "group", c.Group)
	if err != nil {
		return nil, fmt.Errorf("members of group %s: %w", c.Group, err)
	}
	current := map[string]bool{}
	for o := it.Next(); o != nil; o = it.Next() {
		if u := o.(*User); slices.Contains(u.SCIMGroups, c.Group) {
			current[u.ID] = true
		}
	}
	want := map[string]bool{}
	switch {
	case !c.Linked:
	case c.Replace:
		for _, id := range c.Members {
			want[id] = true
		}
	default:
		for id := range current {
			want[id] = true
		}
		for _, id := range c.Add {
			want[id] = true
		}
		for _, id := range c.Remove {
			delete(want, id)
		}
	}
	var changes []string
	for id := range want {
		if !current[id] {
			changes = append(changes, id)
		}
	}
	for id := range current {
		if !want[id] {
			changes = append(changes, id)
		}
	}
	slices.Sort(changes)
	for _, id := range changes {
		raw, err := tx.First(tableUsers, "id", id)
		if err != nil {
			return nil, fmt.Errorf("group %s member %s: %w", c.Group, id, err)
		}
		if raw == nil {
			return nil, fmt.Errorf("group %s member %s: %w", c.Group, id, ErrNotFound)
		}
		old := raw.(*User)
		u := *old
		u.TokenGroups = old.GroupsFromToken()
		if want[id] {
			u.SCIMGroups = groupSet(append(slices.Clone(old.SCIMGroups), c.Group))
		} else {
			u.SCIMGroups = groupSet(slices.DeleteFunc(slices.Clone(old.SCIMGroups), func(s string) bool { return s == c.Group }))
		}
		if _, err := putUserTxn(tx, old, u, nil, false, c.Now); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// SCIMMembersOf lists the users SCIM made members of group, by id.
func (s *State) SCIMMembersOf(group string) ([]*User, error) {
	_, users, err := s.UsersInGroup(nil, group)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(users, func(u *User) bool { return !slices.Contains(u.SCIMGroups, group) }), nil
}
