package raftstore

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
)

const tableEntitlements = "entitlements"

// SudoAllCommands is the Path of the one SudoCommand meaning "any command"
// (sudoers' ALL); the rule is api's (api/sudo.go).
const SudoAllCommands = api.SudoAllCommands

// DefaultRunAs is the account an entitlement runs commands as by default.
const DefaultRunAs = api.DefaultSudoRunAs

// SudoCommand is one command an entitlement allows, rendered into sudoers as
// "Path Args...". Args nil allows any arguments; Args empty but not nil
// allows none (rendered as Path ""). Path is absolute, or SudoAllCommands.
type SudoCommand struct {
	Path string
	Args []string
}

// Entitlement is a named, structured sudo rule that grants reference. Every
// field is checked strictly because agents render it into /etc/sudoers.d.
type Entitlement struct {
	Name     string
	Commands []SudoCommand
	// RunAs is the target account; DefaultRunAs when empty.
	RunAs    string
	NoPasswd bool
	NoExec   bool
	// SetEnv lets the user set environment variables on the command line,
	// which sudo then does not filter: it is root-equivalent (LD_PRELOAD) and
	// belongs only on commands that are already trusted that far.
	SetEnv bool
	// EnvKeep are variables kept from the user's environment (sorted, unique).
	EnvKeep     []string
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableEntitlements,
		newObj: func() any { return new(Entitlement) },
		schema: &memdb.TableSchema{
			Name: tableEntitlements,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
	})
	registerCommand(EntitlementUpsertType, func() Command { return new(EntitlementUpsert) })
	registerCommand(EntitlementDeleteType, func() Command { return new(EntitlementDelete) })
}

// validate applies the sudo rule both the cluster and the agent check
// (api.Entitlement.Validate).
func (e *Entitlement) validate() error {
	err := e.wire().Validate()
	switch {
	case err == nil:
		return nil
	case !api.IsEntitlementName(e.Name):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	default:
		return fmt.Errorf("%w: entitlement %s: %w", ErrInvalid, e.Name, err)
	}
}

// wire is the entitlement as the agent receives it.
func (e *Entitlement) wire() api.Entitlement {
	cmds := make([]api.SudoCommand, len(e.Commands))
	for i, c := range e.Commands {
		cmds[i] = api.SudoCommand(c)
	}
	return api.Entitlement{Name: e.Name, Commands: cmds, RunAs: e.RunAs, NoPasswd: e.NoPasswd, NoExec: e.NoExec, SetEnv: e.SetEnv, EnvKeep: e.EnvKeep}
}

func (c SudoCommand) equal(o SudoCommand) bool {
	return c.Path == o.Path && (c.Args == nil) == (o.Args == nil) && slices.Equal(c.Args, o.Args)
}

// cloneSudoCommands deep-copies cs, keeping each Args' nil-ness (nil means
// any arguments, empty means none).
func cloneSudoCommands(cs []SudoCommand) []SudoCommand {
	out := make([]SudoCommand, len(cs))
	for i, c := range cs {
		out[i].Path = c.Path
		if c.Args != nil {
			out[i].Args = append(make([]string, 0, len(c.Args)), c.Args...)
		}
	}
	return out
}

func (e *Entitlement) sameRule(o *Entitlement) bool {
	return e.RunAs == o.RunAs && e.NoPasswd == o.NoPasswd && e.NoExec == o.NoExec && e.SetEnv == o.SetEnv &&
		slices.Equal(e.EnvKeep, o.EnvKeep) &&
		slices.EqualFunc(e.Commands, o.Commands, SudoCommand.equal)
}

// EntitlementUpsert creates or replaces an entitlement. CreatedAt and
// CreateIndex are kept; an upsert that changes nothing writes nothing.
type EntitlementUpsert struct {
	Entitlement Entitlement
	Now         time.Time
}

func (c *EntitlementUpsert) Type() MessageType { return EntitlementUpsertType }

func (c *EntitlementUpsert) Validate() error { return c.Entitlement.validate() }

func (c *EntitlementUpsert) apply(tx *writeTxn) (any, error) {
	e := c.Entitlement
	e.Commands = cloneSudoCommands(e.Commands)
	e.EnvKeep = sortedSet(e.EnvKeep)
	if e.RunAs == "" {
		e.RunAs = DefaultRunAs
	}
	raw, err := tx.First(tableEntitlements, "id", e.Name)
	if err != nil {
		return nil, fmt.Errorf("upsert entitlement %s: %w", e.Name, err)
	}
	if raw != nil {
		old := raw.(*Entitlement)
		if old.sameRule(&e) {
			cp := *old
			return &cp, nil // no-op: don't wake watchers
		}
		e.CreatedAt, e.CreateIndex = old.CreatedAt, old.CreateIndex
	} else {
		e.CreatedAt, e.CreateIndex = c.Now, tx.index
	}
	e.ModifyIndex = tx.index
	if err := tx.Insert(tableEntitlements, &e); err != nil {
		return nil, fmt.Errorf("insert entitlement %s: %w", e.Name, err)
	}
	return &e, tx.bump(tableEntitlements)
}

// EntitlementDelete removes an entitlement; it is refused with ErrConflict
// while a grant references it.
type EntitlementDelete struct {
	Name string
}

func (c *EntitlementDelete) Type() MessageType { return EntitlementDeleteType }

func (c *EntitlementDelete) Validate() error {
	if !api.IsEntitlementName(c.Name) {
		return invalidf("entitlement name %q is not valid", c.Name)
	}
	return nil
}

func (c *EntitlementDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableEntitlements, "id", c.Name)
	if err != nil {
		return nil, fmt.Errorf("delete entitlement %s: %w", c.Name, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("entitlement %s: %w", c.Name, ErrNotFound)
	}
	g, err := tx.First(tableGrants, "sudo", c.Name)
	if err != nil {
		return nil, fmt.Errorf("delete entitlement %s: %w", c.Name, err)
	}
	if g != nil {
		return nil, fmt.Errorf("%w: entitlement %s is used by grant %s", ErrConflict, c.Name, g.(*Grant).ID)
	}
	if err := tx.Delete(tableEntitlements, raw); err != nil {
		return nil, fmt.Errorf("delete entitlement %s: %w", c.Name, err)
	}
	return nil, tx.bump(tableEntitlements)
}

// EntitlementByName returns the entitlement, or nil.
func (s *State) EntitlementByName(ws memdb.WatchSet, name string) (uint64, *Entitlement, error) {
	return getOne[Entitlement](s, ws, tableEntitlements, "id", name)
}

// Entitlements lists every entitlement by name.
func (s *State) Entitlements(ws memdb.WatchSet) (uint64, []*Entitlement, error) {
	return getAll[Entitlement](s, ws, tableEntitlements, "id")
}
