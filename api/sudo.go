package api

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The sudo-rule check, in one place: the cluster refuses an entitlement by it
// when an administrator writes one (raftstore), and the agent refuses it again
// before rendering the rule into /etc/sudoers.d (agent/hostapply), because the
// file grants root and the agent trusts no one else's validation.

// SudoAllCommands is the Path of the one SudoCommand meaning "any command"
// (sudoers' ALL). It must be the rule's only command, without Args.
const SudoAllCommands = "ALL"

// DefaultSudoRunAs is the account a rule runs commands as when RunAs is empty.
const DefaultSudoRunAs = "root"

const (
	// MaxSudoCommands bounds the commands of one rule.
	MaxSudoCommands = 64
	// MaxSudoCommandLen is sudo-rs's limit on one command with its arguments.
	MaxSudoCommandLen = 1024
	// MaxSudoEnvKeep bounds the variables one rule keeps.
	MaxSudoEnvKeep = 64
)

// ErrSudoRule is wrapped by every refusal of a sudo rule.
var ErrSudoRule = errors.New("sudo rule refused")

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

// envKeepDenied are variables a rule may not keep: each lets the invoking
// user run code as the target user (sudo's own env_delete list is
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

// sudoError is a refusal whose message is only the reason (callers put the
// entitlement's name and their own sentinel in front); it is ErrSudoRule.
type sudoError struct{ msg string }

func (e *sudoError) Error() string        { return e.msg }
func (e *sudoError) Is(target error) bool { return target == ErrSudoRule }

func sudoRefusal(format string, args ...any) error {
	return &sudoError{msg: fmt.Sprintf(format, args...)}
}

// IsEntitlementName reports whether s may name an entitlement (and so a file
// in /etc/sudoers.d): lowercase letters, digits, '_' and '-', at most 63,
// starting with a letter or digit.
func IsEntitlementName(s string) bool { return entitlementNameRE.MatchString(s) }

// QuoteName quotes a name for a message when it is not a plain name (it may
// hold a newline or worse), cut to about 80 characters.
func QuoteName(s string) string {
	if IsPOSIXName(s) || IsEntitlementName(s) {
		return s
	}
	q := fmt.Sprintf("%q", s)
	if len(q) > 80 {
		q = q[:77] + "..."
	}
	return q
}

// Validate refuses a rule that must not reach sudoers. Its messages name the
// field, not the entitlement: callers prefix the name. Every error wraps
// ErrSudoRule.
func (e Entitlement) Validate() error {
	if !IsEntitlementName(e.Name) {
		return sudoRefusal("entitlement name %s: want lowercase letters, digits, '_' and '-', at most 63", QuoteName(e.Name))
	}
	if len(e.Commands) == 0 {
		return sudoRefusal("no commands")
	}
	if len(e.Commands) > MaxSudoCommands {
		return sudoRefusal("more than %d commands", MaxSudoCommands)
	}
	for i, c := range e.Commands {
		if c.Path == SudoAllCommands {
			if len(e.Commands) != 1 || c.Args != nil {
				return sudoRefusal("%s must be the only command and take no arguments", SudoAllCommands)
			}
			continue
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("command %d: %w", i+1, err)
		}
	}
	if e.RunAs != "" && !IsPOSIXName(e.RunAs) {
		return sudoRefusal("run-as %q is not a POSIX user name", e.RunAs)
	}
	if len(e.EnvKeep) > MaxSudoEnvKeep {
		return sudoRefusal("keeps more than %d variables", MaxSudoEnvKeep)
	}
	for _, v := range e.EnvKeep {
		if !envNameRE.MatchString(v) {
			return sudoRefusal("env_keep %q is not a variable name", v)
		}
		if envKeepDenied[v] || slices.ContainsFunc(envKeepDeniedPrefixes, func(p string) bool { return strings.HasPrefix(v, p) }) {
			runAs := e.RunAs
			if runAs == "" {
				runAs = DefaultSudoRunAs
			}
			return sudoRefusal("keeping %s would let the user run code as %s", v, runAs)
		}
	}
	return nil
}

// Validate refuses a command (other than SudoAllCommands, which only
// Entitlement.Validate admits) that sudoers would read as something else.
// Every error wraps ErrSudoRule.
func (c SudoCommand) Validate() error {
	if err := ValidSudoPath(c.Path); err != nil {
		return err
	}
	n := len(c.Path)
	for i, a := range c.Args {
		n += 1 + len(a)
		switch {
		case a == "":
			return sudoRefusal("%s: argument %d is empty", c.Path, i+1)
		case !utf8.ValidString(a):
			return sudoRefusal("%s: argument %d is not UTF-8", c.Path, i+1)
		case strings.ContainsFunc(a, unicode.IsControl):
			return sudoRefusal("%s: argument %d holds a control character", c.Path, i+1)
		case strings.ContainsFunc(a, unicode.IsSpace):
			return sudoRefusal("%s: argument %d holds whitespace; give each argument separately", c.Path, i+1)
		case strings.ContainsAny(a, sudoArgForbidden):
			return sudoRefusal("%s: argument %q holds one of %s", c.Path, a, sudoArgForbidden)
		case i == 0 && strings.HasPrefix(a, "^"):
			// sudo reads arguments starting with ^ as a regular expression.
			return sudoRefusal("%s: first argument %q starts with ^", c.Path, a)
		}
	}
	if n > MaxSudoCommandLen {
		return sudoRefusal("%s: command with its arguments is longer than %d bytes", c.Path, MaxSudoCommandLen)
	}
	return nil
}

// ValidSudoPath accepts a clean absolute path to a file: no "." or ".."
// component, no empty component, and no trailing slash, which sudoers reads
// as "every command in this directory". The error wraps ErrSudoRule.
func ValidSudoPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return sudoRefusal("command path %q is not absolute (or %s alone)", p, SudoAllCommands)
	}
	for _, part := range strings.Split(p[1:], "/") {
		switch {
		case part == "":
			return sudoRefusal("command path %q has an empty component or a trailing slash", p)
		case part == "." || part == "..":
			return sudoRefusal("command path %q is not clean", p)
		case !sudoPathComponentRE.MatchString(part):
			return sudoRefusal("command path %q: component %q holds a character outside letters, digits and ._+@~-", p, part)
		}
	}
	return nil
}
