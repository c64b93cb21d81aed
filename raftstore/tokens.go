package raftstore

import (
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/go-memdb"
)

const tableTokens = "tokens"

// TokenKind says what a token lets its bearer do.
type TokenKind string

const (
	// TokenEnroll enrolls a server agent into one project.
	TokenEnroll TokenKind = "enroll"
	// TokenJoin lets a new node join the cluster.
	TokenJoin TokenKind = "join"
)

func (k TokenKind) valid() bool { return k == TokenEnroll || k == TokenJoin }

// UnlimitedUses is the UsesLeft of a token that may be used any number of
// times until it expires or is deleted.
const UnlimitedUses = -1

const maxCreatedByLen = 256

var tokenHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Token is an enrollment or join token. Only the hex SHA-256 of its secret is
// stored; the secret itself never enters raft.
type Token struct {
	// Hash is the lowercase hex SHA-256 of the secret.
	Hash string
	Kind TokenKind
	// Project is the project an enroll token enrolls into; empty for join.
	Project     string
	Description string
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
	// UsesLeft counts the uses left (≥1), or is UnlimitedUses. A token whose
	// last use is spent is deleted.
	UsesLeft    int
	CreatedBy   string
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableTokens,
		newObj: func() any { return new(Token) },
		schema: &memdb.TableSchema{
			Name: tableTokens,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Hash"}},
				// Join tokens have no project.
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Project"}},
			},
		},
	})
	registerCommand(TokenCreateType, func() Command { return new(TokenCreate) })
	registerCommand(TokenUseType, func() Command { return new(TokenUse) })
	registerCommand(TokenDeleteType, func() Command { return new(TokenDelete) })
}

func validTokenHash(h string) error {
	if !tokenHashRE.MatchString(h) {
		// The hash is not secret, but a malformed one may be a secret pasted
		// in its place: never echo it.
		return invalidf("token hash is not 64 lowercase hex characters")
	}
	return nil
}

// TokenCreate stores a new token. An enroll token needs an existing project
// (ErrNotFound otherwise); a hash already stored is ErrConflict.
type TokenCreate struct {
	Token Token
	Now   time.Time
}

func (c *TokenCreate) Type() MessageType { return TokenCreateType }

func (c *TokenCreate) Validate() error {
	t := &c.Token
	if err := validTokenHash(t.Hash); err != nil {
		return err
	}
	switch t.Kind {
	case TokenEnroll:
		if !projectNameRE.MatchString(t.Project) {
			return invalidf("enroll token: project name %q is not valid", t.Project)
		}
	case TokenJoin:
		if t.Project != "" {
			return invalidf("join token: has a project (%s)", t.Project)
		}
	default:
		return invalidf("token kind %q is not enroll or join", t.Kind)
	}
	if t.UsesLeft != UnlimitedUses && t.UsesLeft < 1 {
		return invalidf("token uses %d: want %d (unlimited) or at least 1", t.UsesLeft, UnlimitedUses)
	}
	if c.Now.IsZero() {
		return invalidf("token creation without a time")
	}
	if !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(c.Now) {
		return invalidf("token expires at %s, which is not after its creation", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := validText("token description", t.Description, maxDescriptionLen); err != nil {
		return err
	}
	return validText("token creator", t.CreatedBy, maxCreatedByLen)
}

func (c *TokenCreate) apply(tx *writeTxn) (any, error) {
	t := c.Token
	if t.Kind == TokenEnroll {
		if err := projectExistsTxn(tx, t.Project); err != nil {
			return nil, fmt.Errorf("enroll token: %w", err)
		}
	}
	raw, err := tx.First(tableTokens, "id", t.Hash)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	if raw != nil {
		return nil, fmt.Errorf("%w: a token with this hash already exists", ErrConflict)
	}
	t.CreatedAt, t.CreateIndex, t.ModifyIndex = c.Now, tx.index, tx.index
	if err := tx.Insert(tableTokens, &t); err != nil {
		return nil, fmt.Errorf("insert token: %w", err)
	}
	return &t, tx.bump(tableTokens)
}

// TokenUse spends one use of a token of Kind and returns the token as it is
// after the use. A missing token, or one of another kind, is ErrNotFound
// (the bearer learns nothing about tokens of other kinds); one whose
// ExpiresAt is not after Now is ErrExpired; one without uses ErrExhausted.
// Counted uses go down by one; the token is deleted with its last use (the
// returned copy then has UsesLeft 0). Unlimited tokens are not written.
//
// A refused use changes nothing, so expired tokens stay until deleted.
type TokenUse struct {
	Hash string
	Kind TokenKind
	Now  time.Time
}

func (c *TokenUse) Type() MessageType { return TokenUseType }

func (c *TokenUse) Validate() error {
	if err := validTokenHash(c.Hash); err != nil {
		return err
	}
	if !c.Kind.valid() {
		return invalidf("token kind %q is not enroll or join", c.Kind)
	}
	if c.Now.IsZero() {
		return invalidf("token use without a time")
	}
	return nil
}

func (c *TokenUse) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableTokens, "id", c.Hash)
	if err != nil {
		return nil, fmt.Errorf("use token: %w", err)
	}
	if raw == nil || raw.(*Token).Kind != c.Kind {
		return nil, fmt.Errorf("%s token: %w", c.Kind, ErrNotFound)
	}
	t := *raw.(*Token)
	switch {
	case !t.ExpiresAt.IsZero() && !c.Now.Before(t.ExpiresAt):
		return nil, fmt.Errorf("%s token: %w at %s", t.Kind, ErrExpired, t.ExpiresAt.UTC().Format(time.RFC3339))
	case t.UsesLeft == 0:
		return nil, fmt.Errorf("%s token: %w", t.Kind, ErrExhausted)
	case t.UsesLeft == UnlimitedUses:
		return &t, nil
	}
	t.UsesLeft--
	t.ModifyIndex = tx.index
	if t.UsesLeft == 0 {
		if err := tx.Delete(tableTokens, raw); err != nil {
			return nil, fmt.Errorf("delete spent token: %w", err)
		}
	} else if err := tx.Insert(tableTokens, &t); err != nil {
		return nil, fmt.Errorf("update token: %w", err)
	}
	return &t, tx.bump(tableTokens)
}

// TokenDelete removes a token.
type TokenDelete struct {
	Hash string
}

func (c *TokenDelete) Type() MessageType { return TokenDeleteType }

func (c *TokenDelete) Validate() error { return validTokenHash(c.Hash) }

func (c *TokenDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableTokens, "id", c.Hash)
	if err != nil {
		return nil, fmt.Errorf("delete token: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err := tx.Delete(tableTokens, raw); err != nil {
		return nil, fmt.Errorf("delete token: %w", err)
	}
	return nil, tx.bump(tableTokens)
}

// TokenByHash returns the token, or nil.
func (s *State) TokenByHash(ws memdb.WatchSet, hash string) (uint64, *Token, error) {
	return getOne[Token](s, ws, tableTokens, "id", hash)
}

// Tokens lists every token, ordered by hash.
func (s *State) Tokens(ws memdb.WatchSet) (uint64, []*Token, error) {
	return getAll[Token](s, ws, tableTokens, "id")
}

// TokensByProject lists the enroll tokens of project.
func (s *State) TokensByProject(ws memdb.WatchSet, project string) (uint64, []*Token, error) {
	return getAll[Token](s, ws, tableTokens, "project", project)
}
