package hostapply

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/api"
)

const (
	// maxSudoSubjects bounds the users and groups of one rule.
	maxSudoSubjects = 10000
	// sudoFilePrefix names the agent's files in SudoersDir.
	sudoFilePrefix = "rampart-"
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// checkSudoRule refuses a rule that must not reach sudoers: the rule itself
// by the check the cluster applies too (api.Entitlement.Validate; the agent
// renders it into a file that grants root, so it trusts no one else's
// validation), and the users and groups it is granted to.
func (h *Host) checkSudoRule(name string, r SudoRule) error {
	cmds := make([]api.SudoCommand, len(r.Commands))
	for i, c := range r.Commands {
		cmds[i] = api.SudoCommand(c)
	}
	rule := api.Entitlement{Name: name, Commands: cmds, RunAs: r.RunAs, NoPasswd: r.NoPasswd, NoExec: r.NoExec, SetEnv: r.SetEnv, EnvKeep: r.EnvKeep}
	if err := rule.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(r.Users)+len(r.Groups) > maxSudoSubjects {
		return invalidf("more than %d users and groups", maxSudoSubjects)
	}
	for _, s := range append(slices.Clone(r.Users), r.Groups...) {
		// Only managed names are rendered, but a name that is not even
		// POSIX means the rule was built wrong (or maliciously): refuse it
		// whole rather than render part of it.
		if !api.IsPOSIXName(s) {
			return invalidf("user or group %s is not a POSIX name", api.QuoteName(s))
		}
	}
	return nil
}

// renderSudoCommand renders one command as sudoers reads it.
func renderSudoCommand(c SudoCommand) string {
	if c.Path == api.SudoAllCommands {
		return api.SudoAllCommands
	}
	if c.Args == nil {
		return c.Path
	}
	if len(c.Args) == 0 {
		return c.Path + ` ""`
	}
	var b strings.Builder
	b.WriteString(c.Path)
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(strings.ReplaceAll(a, "=", `\=`))
	}
	return b.String()
}

// sudoAlias names the entitlement's Cmnd_Alias. Aliases are global across
// every sudoers file and a duplicate breaks sudo for everyone, so the name
// carries a hash of the entitlement name: "a-b" and "a_b" differ.
func sudoAlias(name string) string {
	sum := sha256.Sum256([]byte(name))
	up := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	return "RAMPART_" + up + "_" + strings.ToUpper(hex.EncodeToString(sum[:4]))
}

// renderSudoers renders the file of entitlement name for users and groups
// (already filtered to managed ones, sorted). Tags are always explicit:
// sudo implies SETENV for ALL, so an entitlement without SetEnv says
// NOSETENV.
func renderSudoers(name string, r SudoRule, users, groups []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by rampart-agent: entitlement %s. Changes are overwritten.\n", name)
	subjects := slices.Clone(users)
	for _, g := range groups {
		subjects = append(subjects, "%"+g)
	}
	cmds := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		cmds[i] = renderSudoCommand(c)
	}
	if len(r.EnvKeep) > 0 {
		keep := slices.Clone(r.EnvKeep)
		slices.Sort(keep)
		keep = slices.Compact(keep)
		if len(r.Commands) == 1 && r.Commands[0].Path == api.SudoAllCommands {
			// Defaults bound to ALL commands would reach every rule:
			// bind to the subjects instead.
			fmt.Fprintf(&b, "Defaults:%s env_keep += \"%s\"\n", strings.Join(subjects, ", "), strings.Join(keep, " "))
		} else {
			alias := sudoAlias(name)
			fmt.Fprintf(&b, "Cmnd_Alias %s = %s\n", alias, strings.Join(cmds, ", "))
			fmt.Fprintf(&b, "Defaults!%s env_keep += \"%s\"\n", alias, strings.Join(keep, " "))
		}
	}
	runAs := r.RunAs
	if runAs == "" {
		runAs = api.DefaultSudoRunAs
	}
	tag := func(on bool, yes, no string) string {
		if on {
			return yes + ": "
		}
		return no + ": "
	}
	fmt.Fprintf(&b, "%s ALL = (%s) %s%s%s%s\n", strings.Join(subjects, ", "), runAs,
		tag(r.NoPasswd, "NOPASSWD", "PASSWD"), tag(r.NoExec, "NOEXEC", "EXEC"), tag(r.SetEnv, "SETENV", "NOSETENV"),
		strings.Join(cmds, ", "))
	return []byte(b.String())
}

// applySudo writes one file per valid entitlement (checked with visudo -cf
// before it replaces the old one), removes the agent's files of
// entitlements no longer desired, and checks the whole configuration with
// visudo -c, putting every written file back if that fails. Removals are
// never put back: removing a file that defines nothing another file uses
// cannot break sudoers, and a revoked rule must stay revoked even when
// sudoers was already broken by something else. A refused entitlement keeps
// its old file.
func (p *pass) applySudo() error {
	cfg := &p.h.cfg
	dir := p.h.path(cfg.SudoersDir)
	if err := ensureDir(dir, 0o750); err != nil {
		p.rep.problem(KindSudo, cfg.SudoersDir, err)
		return nil
	}
	p.checkIncludeDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.rep.problem(KindSudo, cfg.SudoersDir, err)
		return nil
	}
	var txn fileTxn
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "."+sudoFilePrefix) && strings.Contains(n, ".tmp"):
			// A temporary file of a pass that died.
			_ = os.Remove(path.Join(dir, n))
		case strings.HasPrefix(n, sudoFilePrefix):
			ent := strings.TrimPrefix(n, sudoFilePrefix)
			if _, ok := p.w.sudo[ent]; ok || p.w.sudoRefused[ent] {
				continue
			}
			if err := os.Remove(path.Join(dir, n)); err != nil {
				p.rep.problem(KindSudo, api.QuoteName(ent), fmt.Errorf("remove stale file: %w", err))
				continue
			}
			p.logChange(KindSudo, api.QuoteName(ent), "remove", "")
		}
	}
	for _, name := range sortedKeys(p.w.sudo) {
		r := p.w.sudo[name]
		users, groups := p.sudoSubjects(name, r)
		file := path.Join(dir, sudoFilePrefix+name)
		var content []byte
		if len(users)+len(groups) > 0 {
			content = renderSudoers(name, r, users, groups)
		}
		old, err := readFileState(file)
		if err != nil {
			p.rep.problem(KindSudo, name, err)
			continue
		}
		if old.same(content, 0o440) {
			continue
		}
		if content == nil {
			if err := os.Remove(file); err != nil {
				p.rep.problem(KindSudo, name, err)
				continue
			}
			p.logChange(KindSudo, name, "remove", "no managed users or groups")
			continue
		}
		if err := p.writeSudoFile(&txn, file, content); err != nil {
			p.rep.problem(KindSudo, name, err)
			continue
		}
		action := "write"
		if !old.exists {
			action = "create"
		}
		p.logChange(KindSudo, name, action, "")
	}
	if !txn.changed() {
		return nil
	}
	// visudo -cf checked each file alone; a file can still clash with
	// another (an alias defined twice), and a broken sudoers.d breaks sudo
	// for everyone.
	if out, err := p.runCmd("visudo", "-c"); err != nil {
		rerr := txn.rollback()
		p.rep.problem(KindSudo, cfg.SudoersDir, fmt.Errorf("%w: visudo -c failed after the change; every sudo file this pass wrote was put back: %w%s", ErrRejected, errors.Join(err, rerr), outputTail(out)))
	}
	return nil
}

// writeSudoFile writes content to a temporary file beside file, has visudo
// check it, and renames it into place.
func (p *pass) writeSudoFile(txn *fileTxn, file string, content []byte) error {
	old, err := readFileState(file)
	if err != nil {
		return err
	}
	tmp, err := createTemp(file, content, 0o440)
	if err != nil {
		return err
	}
	inside := path.Join(p.h.cfg.SudoersDir, path.Base(tmp))
	if _, err := p.runCmd("visudo", "-c", "-f", inside); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: visudo -cf refused the rendered file; the old one stays: %w", ErrRejected, err)
	}
	if err := commitTemp(tmp, file); err != nil {
		return err
	}
	txn.done = append(txn.done, txnEntry{path: file, old: old})
	return nil
}

// sudoSubjects filters a rule's users and groups to the managed, active
// accounts and managed groups; other names are reported (a deprovisioned
// account is dropped silently).
func (p *pass) sudoSubjects(name string, r SudoRule) (users, groups []string) {
	for _, u := range r.Users {
		switch {
		case p.activeUsers[u]:
			users = append(users, u)
		case p.st.Users[u] != nil || p.w.userByName[u] != nil:
			// Desired or managed but not active: deprovisioned, not
			// created yet, or reported already.
		default:
			p.rep.problem(KindSudo, name, fmt.Errorf("%w: user %s is not an account rampart manages; left out", ErrConflict, u))
		}
	}
	for _, g := range r.Groups {
		switch {
		case p.membersOK[g]:
			groups = append(groups, g)
		case p.usableGroups[g]:
			// Reported by applyGroupMembers: its members are not (only)
			// the ones the cluster gave it.
		default:
			p.rep.problem(KindSudo, name, fmt.Errorf("%w: group %s is not a group rampart manages; left out", ErrConflict, g))
		}
	}
	slices.Sort(users)
	slices.Sort(groups)
	return slices.Compact(users), slices.Compact(groups)
}

// includeDirRE finds sudoers' include of a directory (#includedir is the
// pre-1.9 spelling).
var includeDirRE = regexp.MustCompile(`(?m)^[#@]includedir\s+(\S+)\s*$`)

// checkIncludeDir reports when sudoers does not read SudoersDir: the files
// would be written and checked, and have no effect.
func (p *pass) checkIncludeDir() {
	b, err := os.ReadFile(p.h.path(p.h.cfg.SudoersFile))
	if err != nil {
		p.rep.problem(KindSudo, p.h.cfg.SudoersFile, err)
		return
	}
	for _, m := range includeDirRE.FindAllStringSubmatch(string(b), -1) {
		if path.Clean(m[1]) == p.h.cfg.SudoersDir {
			return
		}
	}
	p.rep.problem(KindSudo, p.h.cfg.SudoersFile, fmt.Errorf("%s does not include %s: the agent's rules have no effect", p.h.cfg.SudoersFile, p.h.cfg.SudoersDir))
}

func outputTail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 1024 {
		s = "..." + s[len(s)-1024:]
	}
	return "\n" + s
}
