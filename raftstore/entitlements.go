package raftstore

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-memdb"
)

const tableEntitlements = "entitlements"

// SudoAllCommands is the Path of the one SudoCommand meaning "any command"
// (sudoers' ALL). It must be the entitlement's only command, without Args.
const SudoAllCommands = "ALL"

// DefaultRunAs is the account an entitlement runs commands as by default.
const DefaultRunAs = "root"

const (
	maxSudoCommands = 64
	// maxSudoCommandLen is sudo-rs's limit on one command with its arguments.
	maxSudoCommandLen = 1024
	maxEnvKeep        = 64
)

var (
	entitlementNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envNameRE         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// sudoPathComponentRE is deliberately narrower than what a file name may
	// be: every character sudoers treats specially in a command path
	// (whitespace , : = \ # and the glob characters * ? [ ]) stays out.
	sudoPathComponentRE = regexp.MustCompile(`^[A-Za-z0-9._+@~-]+$`)
)

// sudoArgForbidden are the characters refused in a command argument, each
// for a sudoers reason:
//
//	, :   end the command in a Cmnd list / start a tag
//	\     is sudoers' escape
//	#     starts a comment: "/bin/x #" would render as /bin/x, any arguments
//	"     "" alone means "no arguments"
//	* ? [ ] are fnmatch wildcards: a structured rule is literal
//
// Whitespace is refused too: sudoers splits arguments on it, so one argument
// holding a space could not be told from two. '=' is allowed (--opt=value)
// but must be rendered escaped as "\=", which both sudo and sudo-rs accept,
// because an unescaped '=' ends the command's arguments.
const sudoArgForbidden = `,:\#"*?[]`

// envKeepDenied are variables an entitlement may not keep: each lets the
// invoking user run code as the target user (sudo's own env_delete list is
// overridden by env_keep, so it does not protect against them). Names
// starting with one of envKeepDeniedPrefixes are refused likewise.
var envKeepDenied = map[string]bool{
	"PATH": true, "IFS": true, "CDPATH": true, "ENV": true, "BASH_ENV": true, "BASHOPTS": true,
	"SHELLOPTS": true, "PS4": true, "GLOBIGNORE": true, "FPATH": true, "ZDOTDIR": true,
	"NULLCMD": true, "READNULLCMD": true, "TMPPREFIX": true, "LOCALDOMAIN": true,
	"RES_OPTIONS": true, "HOSTALIASES": true, "NLSPATH": true, "PATH_LOCALE": true,
	"GCONV_PATH": true, "TERMINFO": true, "TERMCAP": true, "JAVA_TOOL_OPTIONS": true,
	"PERLLIB": true, "PERL5LIB": true, "PERL5OPT": true, "PERL5DB": true, "PERLIO_DEBUG": true,
	"PYTHONHOME": true, "PYTHONPATH": true, "PYTHONSTARTUP": true, "PYTHONINSPECT": true,
	"PYTHONUSERBASE": true, "RUBYLIB": true, "RUBYOPT": true, "NODE_OPTIONS": true,
	"NODE_PATH": true, "EDITOR": true, "VISUAL": true, "SUDO_EDITOR": true, "PAGER": true,
	"SUDO_ASKPASS": true,
}

var envKeepDeniedPrefixes = []string{"LD_", "DYLD_", "_RLD", "BASH_FUNC_"}

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

func (e *Entitlement) validate() error {
	if !entitlementNameRE.MatchString(e.Name) {
		return invalidf("entitlement name %q: want lowercase letters, digits, '_' and '-', at most 63", e.Name)
	}
	if len(e.Commands) == 0 {
		return invalidf("entitlement %s has no commands", e.Name)
	}
	if len(e.Commands) > maxSudoCommands {
		return invalidf("entitlement %s has more than %d commands", e.Name, maxSudoCommands)
	}
	for i, c := range e.Commands {
		if c.Path == SudoAllCommands {
			if len(e.Commands) != 1 || c.Args != nil {
				return invalidf("entitlement %s: %s must be the only command and take no arguments", e.Name, SudoAllCommands)
			}
			continue
		}
		if err := c.validate(); err != nil {
			return fmt.Errorf("entitlement %s command %d: %w", e.Name, i+1, err)
		}
	}
	if e.RunAs != "" && !posixNameRE.MatchString(e.RunAs) {
		return invalidf("entitlement %s: run-as %q is not a POSIX user name", e.Name, e.RunAs)
	}
	if len(e.EnvKeep) > maxEnvKeep {
		return invalidf("entitlement %s keeps more than %d variables", e.Name, maxEnvKeep)
	}
	for _, v := range e.EnvKeep {
		if !envNameRE.MatchString(v) {
			return invalidf("entitlement %s: env_keep %q is not a variable name", e.Name, v)
		}
		if envKeepDenied[v] || slices.ContainsFunc(envKeepDeniedPrefixes, func(p string) bool { return strings.HasPrefix(v, p) }) {
			return invalidf("entitlement %s: keeping %s would let the user run code as %s", e.Name, v, cmp.Or(e.RunAs, DefaultRunAs))
		}
	}
	return nil
}

func (c SudoCommand) validate() error {
	if err := validSudoPath(c.Path); err != nil {
		return err
	}
	n := len(c.Path)
	for i, a := range c.Args {
		n += 1 + len(a)
		switch {
		case a == "":
			return invalidf("%s: argument %d is empty", c.Path, i+1)
		case hasControlRune(a):
			return invalidf("%s: argument %d holds a control character", c.Path, i+1)
		case strings.ContainsFunc(a, unicode.IsSpace):
			return invalidf("%s: argument %d holds whitespace; give each argument separately", c.Path, i+1)
		case strings.ContainsAny(a, sudoArgForbidden):
			return invalidf("%s: argument %q holds one of %s", c.Path, a, sudoArgForbidden)
		case i == 0 && strings.HasPrefix(a, "^"):
			// sudo reads arguments starting with ^ as a regular expression.
			return invalidf("%s: first argument %q starts with ^", c.Path, a)
		}
	}
	if n > maxSudoCommandLen {
		return invalidf("%s: command with its arguments is longer than %d bytes", c.Path, maxSudoCommandLen)
	}
	return nil
}

// validSudoPath accepts a clean absolute path to a file: no "." or ".."
// component, no empty component, and no trailing slash, which sudoers reads
// as "every command in this directory".
func validSudoPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return invalidf("command path %q is not absolute (or %s alone)", p, SudoAllCommands)
	}
	for _, part := range strings.Split(p[1:], "/") {
		switch {
		case part == "":
			return invalidf("command path %q has an empty component or a trailing slash", p)
		case part == "." || part == "..":
			return invalidf("command path %q is not clean", p)
		case !sudoPathComponentRE.MatchString(part):
			return invalidf("command path %q: component %q holds a character outside letters, digits and ._+@~-", p, part)
		}
	}
	return nil
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
	if !entitlementNameRE.MatchString(c.Name) {
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
