package raftstore

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/rampart-ssh/rampart/api"
)

const tableGrants = "grants"

// maxGroupNameLen bounds a group name in a grant (IdP group names, such as
// Keycloak's full paths, can be long but not unbounded).
const maxGroupNameLen = 256

// GrantRole is what a grant lets its group do in a project.
type GrantRole string

const (
	// GrantUser lets members reach the project's servers.
	GrantUser GrantRole = "user"
	// GrantAdmin also lets members manage the project.
	GrantAdmin GrantRole = "admin"
)

func (r GrantRole) valid() bool { return r == GrantUser || r == GrantAdmin }

// Grant gives an IdP group access to a project, with a role and the sudo
// entitlements its members get on the project's servers. The group need not
// exist yet: groups appear when their first member logs in.
type Grant struct {
	// ID is Project+"/"+Group; apply computes it. A project name never holds
	// a slash, so the id splits unambiguously at the first one.
	ID      string
	Project string
	Group   string
	// Role defaults to GrantUser.
	Role GrantRole
	// Sudo names entitlements (sorted, unique); each must exist.
	Sudo        []string
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

// GrantID returns the id of the grant of group in project.
func GrantID(project, group string) string { return project + "/" + group }

func init() {
	registerTable(tableDef{
		name:   tableGrants,
		newObj: func() any { return new(Grant) },
		schema: &memdb.TableSchema{
			Name: tableGrants,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"project": {Name: "project", Indexer: &memdb.StringFieldIndex{Field: "Project"}},
				"group":   {Name: "group", Indexer: &memdb.StringFieldIndex{Field: "Group"}},
				// sudo lets an entitlement delete find the grants using it.
				"sudo": {Name: "sudo", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Sudo"}},
			},
		},
	})
	registerCommand(GrantUpsertType, func() Command { return new(GrantUpsert) })
	registerCommand(GrantDeleteType, func() Command { return new(GrantDelete) })
}

// GrantUpsert creates or replaces the grant of a group in a project. The
// project and every named entitlement must exist (ErrNotFound otherwise).
// CreatedAt and CreateIndex are kept; an upsert that changes nothing writes
// nothing.
type GrantUpsert struct {
	Grant Grant
	Now   time.Time
}

func (c *GrantUpsert) Type() MessageType { return GrantUpsertType }

func (c *GrantUpsert) Validate() error {
	g := &c.Grant
	if err := validGrantKey(g.Project, g.Group); err != nil {
		return err
	}
	if g.Role != "" && !g.Role.valid() {
		return invalidf("grant %s: role %q is not user or admin", GrantID(g.Project, g.Group), g.Role)
	}
	for _, e := range g.Sudo {
		if !api.IsEntitlementName(e) {
			return invalidf("grant %s: sudo entitlement name %q is not valid", GrantID(g.Project, g.Group), e)
		}
	}
	return nil
}

func validGrantKey(project, group string) error {
	if !projectNameRE.MatchString(project) {
		return invalidf("grant: project name %q is not valid", project)
	}
	if group == "" {
		return invalidf("grant in project %s: group is empty", project)
	}
	return validText("grant group name", group, maxGroupNameLen)
}

func (c *GrantUpsert) apply(tx *writeTxn) (any, error) {
	g := c.Grant
	g.ID = GrantID(g.Project, g.Group)
	g.Sudo = sortedSet(g.Sudo)
	if g.Role == "" {
		g.Role = GrantUser
	}
	if err := projectExistsTxn(tx, g.Project); err != nil {
		return nil, fmt.Errorf("grant %s: %w", g.ID, err)
	}
	for _, e := range g.Sudo {
		raw, err := tx.First(tableEntitlements, "id", e)
		if err != nil {
			return nil, fmt.Errorf("grant %s: read entitlement %s: %w", g.ID, e, err)
		}
		if raw == nil {
			return nil, fmt.Errorf("grant %s: entitlement %s: %w", g.ID, e, ErrNotFound)
		}
	}
	raw, err := tx.First(tableGrants, "id", g.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert grant %s: %w", g.ID, err)
	}
	if raw != nil {
		old := raw.(*Grant)
		if old.Role == g.Role && slices.Equal(old.Sudo, g.Sudo) {
			cp := *old
			return &cp, nil // no-op: don't wake watchers
		}
		g.CreatedAt, g.CreateIndex = old.CreatedAt, old.CreateIndex
	} else {
		g.CreatedAt, g.CreateIndex = c.Now, tx.index
	}
	g.ModifyIndex = tx.index
	if err := tx.Insert(tableGrants, &g); err != nil {
		return nil, fmt.Errorf("insert grant %s: %w", g.ID, err)
	}
	return &g, tx.bump(tableGrants)
}

// GrantDelete removes the grant of a group in a project.
type GrantDelete struct {
	Project string
	Group   string
}

func (c *GrantDelete) Type() MessageType { return GrantDeleteType }

func (c *GrantDelete) Validate() error { return validGrantKey(c.Project, c.Group) }

func (c *GrantDelete) apply(tx *writeTxn) (any, error) {
	id := GrantID(c.Project, c.Group)
	raw, err := tx.First(tableGrants, "id", id)
	if err != nil {
		return nil, fmt.Errorf("delete grant %s: %w", id, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("grant %s: %w", id, ErrNotFound)
	}
	if err := tx.Delete(tableGrants, raw); err != nil {
		return nil, fmt.Errorf("delete grant %s: %w", id, err)
	}
	return nil, tx.bump(tableGrants)
}

// GrantsByProject lists the grants of project, ordered by group.
func (s *State) GrantsByProject(ws memdb.WatchSet, project string) (uint64, []*Grant, error) {
	return getAll[Grant](s, ws, tableGrants, "project", project)
}

// GrantsByGroup lists the grants of group across projects.
func (s *State) GrantsByGroup(ws memdb.WatchSet, group string) (uint64, []*Grant, error) {
	return getAll[Grant](s, ws, tableGrants, "group", group)
}

// Grants lists every grant, ordered by id.
func (s *State) Grants(ws memdb.WatchSet) (uint64, []*Grant, error) {
	return getAll[Grant](s, ws, tableGrants, "id")
}

// UserProjects returns the grants of every group user is in, ordered by id;
// a user in two groups granted the same project gets both grants, and the
// caller combines them. A user that is not active (disabled or deleted) gets
// none: this is an authorization read, and it fails closed. The index is the
// grants table's; the caller who read user watches the users table itself.
func (s *State) UserProjects(ws memdb.WatchSet, user *User) (uint64, []*Grant, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	idx := maxIndexTxn(tx, ws, tableGrants)
	if user == nil || (user.Status != "" && user.Status != UserActive) {
		return idx, nil, nil
	}
	var out []*Grant
	for _, group := range user.Groups {
		it, err := tx.Get(tableGrants, "group", group)
		if err != nil {
			return 0, nil, fmt.Errorf("list grants of group %s: %w", group, err)
		}
		ws.Add(it.WatchCh())
		for raw := it.Next(); raw != nil; raw = it.Next() {
			out = append(out, raw.(*Grant))
		}
	}
	slices.SortFunc(out, func(a, b *Grant) int { return strings.Compare(a.ID, b.ID) })
	// A user whose Groups list repeats a group would see its grants twice.
	out = slices.CompactFunc(out, func(a, b *Grant) bool { return a.ID == b.ID })
	return idx, out, nil
}
