package raftstore

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableServiceTokens = "service_tokens"

// The scopes a service token can hold: read (every read of the admin API
// but service tokens), admin (the whole admin API), provisioning (SCIM
// alone), auditor (audit, sessions and recordings, read-only) or approver
// (access requests: read them, and approve, deny or revoke them as the
// person who owns the token). A token holds exactly one.
const (
	ServiceRoleRead         = "read"
	ServiceRoleAdmin        = "admin"
	ServiceRoleProvisioning = "provisioning"
	ServiceRoleAuditor      = "auditor"
	ServiceRoleApprover     = "approver"
)

// ServiceRoles lists every scope, in the order help texts show them.
var ServiceRoles = []string{ServiceRoleRead, ServiceRoleAdmin, ServiceRoleProvisioning, ServiceRoleAuditor, ServiceRoleApprover}

// ServiceToken is a bearer token for automation on the HTTPS API. Only the
// SHA-256 of the secret is stored.
type ServiceToken struct {
	ID   string
	Name string
	// Hash is the hex SHA-256 of the secret (64 lower-case hex digits).
	Hash      string
	Role      string
	CreatedBy string
	// OwnerID is the user id of the person who created the token (in the
	// admin shell); empty for a token made by bootstrap or by another
	// token. A token's decisions on access requests count as its owner's.
	OwnerID   string `json:",omitempty"`
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
	// LastUsedAt is when the token last authenticated a request, coarsely:
	// the API records it at most once per interval (ServiceTokenTouch), so
	// reads do not each become a raft write. Zero: never used.
	LastUsedAt  time.Time `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableServiceTokens,
		newObj: func() any { return new(ServiceToken) },
		schema: &memdb.TableSchema{
			Name: tableServiceTokens,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"hash": {Name: "hash", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Hash"}},
				"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
	})
	registerCommand(ServiceTokenCreateType, func() Command { return new(ServiceTokenCreate) })
	registerCommand(ServiceTokenDeleteType, func() Command { return new(ServiceTokenDelete) })
	registerCommand(ServiceTokenTouchType, func() Command { return new(ServiceTokenTouch) })
}

// ServiceTokenCreate adds a service token. Tokens are never updated: the id,
// name and hash must all be new (ErrConflict otherwise).
type ServiceTokenCreate struct {
	Token ServiceToken
	Now   time.Time
}

func (c *ServiceTokenCreate) Type() MessageType { return ServiceTokenCreateType }

func (c *ServiceTokenCreate) Validate() error {
	tk := &c.Token
	switch {
	case tk.ID == "":
		return invalidf("service token id is empty")
	case tk.Name == "":
		return invalidf("service token %s: name is empty", tk.ID)
	case !isLowerHexSHA256(tk.Hash):
		return invalidf("service token %s: hash is not 64 lower-case hex digits", tk.Name)
	case !slices.Contains(ServiceRoles, tk.Role):
		return invalidf("service token %s: role %q is not one of %s", tk.Name, tk.Role, strings.Join(ServiceRoles, ", "))
	case c.Now.IsZero():
		return invalidf("service token %s: command time is missing", tk.Name)
	case !tk.ExpiresAt.IsZero() && !tk.ExpiresAt.After(c.Now):
		return invalidf("service token %s: expiry %s is not after %s", tk.Name, tk.ExpiresAt.Format(time.RFC3339), c.Now.Format(time.RFC3339))
	}
	return nil
}

func (c *ServiceTokenCreate) apply(tx *writeTxn) (any, error) {
	tk := c.Token
	for _, p := range []struct{ index, value, what string }{
		{"id", tk.ID, "id " + tk.ID},
		{"name", tk.Name, "name " + tk.Name},
		{"hash", tk.Hash, "this secret"},
	} {
		raw, err := tx.First(tableServiceTokens, p.index, p.value)
		if err != nil {
			return nil, fmt.Errorf("create service token %s: %w", tk.Name, err)
		}
		if raw != nil {
			// The hash is not echoed: it is as good as the secret for a lookup.
			return nil, fmt.Errorf("%w: a service token with %s exists", ErrConflict, p.what)
		}
	}
	tk.CreatedAt, tk.ExpiresAt = c.Now.UTC(), tk.ExpiresAt.UTC()
	tk.CreateIndex, tk.ModifyIndex = tx.index, tx.index
	if err := tx.Insert(tableServiceTokens, &tk); err != nil {
		return nil, fmt.Errorf("insert service token %s: %w", tk.Name, err)
	}
	return &tk, tx.bump(tableServiceTokens)
}

// ServiceTokenDelete revokes a service token.
type ServiceTokenDelete struct {
	ID string
}

func (c *ServiceTokenDelete) Type() MessageType { return ServiceTokenDeleteType }

func (c *ServiceTokenDelete) Validate() error {
	if c.ID == "" {
		return invalidf("service token id is empty")
	}
	return nil
}

func (c *ServiceTokenDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServiceTokens, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("delete service token %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("service token %s: %w", c.ID, ErrNotFound)
	}
	if err := tx.Delete(tableServiceTokens, raw); err != nil {
		return nil, fmt.Errorf("delete service token %s: %w", c.ID, err)
	}
	return nil, tx.bump(tableServiceTokens)
}

// ServiceTokenTouch records when a service token was last used. It moves
// LastUsedAt forward only, and touches nothing else; a token revoked
// meanwhile is not an error (the touch has nothing left to record).
type ServiceTokenTouch struct {
	ID string
	At time.Time
}

func (c *ServiceTokenTouch) Type() MessageType { return ServiceTokenTouchType }

func (c *ServiceTokenTouch) Validate() error {
	switch {
	case c.ID == "":
		return invalidf("service token id is empty")
	case c.At.IsZero():
		return invalidf("service token %s: last-used time is missing", c.ID)
	}
	return nil
}

func (c *ServiceTokenTouch) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServiceTokens, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("touch service token %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, nil
	}
	cur := raw.(*ServiceToken)
	if !c.At.After(cur.LastUsedAt) {
		// No-op writes do not bump the table, so watchers do not wake.
		return nil, nil
	}
	tk := *cur
	tk.LastUsedAt, tk.ModifyIndex = c.At.UTC(), tx.index
	if err := tx.Insert(tableServiceTokens, &tk); err != nil {
		return nil, fmt.Errorf("touch service token %s: %w", c.ID, err)
	}
	return nil, tx.bump(tableServiceTokens)
}

// ServiceTokenByHash returns the token whose secret hashes to hash, or nil.
// Expiry is the caller's to check, against its own clock.
func (s *State) ServiceTokenByHash(ws memdb.WatchSet, hash string) (uint64, *ServiceToken, error) {
	return getOne[ServiceToken](s, ws, tableServiceTokens, "hash", hash)
}

// ServiceTokenByName returns the token named name, or nil.
func (s *State) ServiceTokenByName(ws memdb.WatchSet, name string) (uint64, *ServiceToken, error) {
	return getOne[ServiceToken](s, ws, tableServiceTokens, "name", name)
}

// ServiceTokens lists every service token, ordered by id.
func (s *State) ServiceTokens(ws memdb.WatchSet) (uint64, []*ServiceToken, error) {
	return getAll[ServiceToken](s, ws, tableServiceTokens, "id")
}
