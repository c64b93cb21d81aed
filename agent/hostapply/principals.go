package hostapply

import (
	"errors"
	"os"
	"path"

	"github.com/rampart-ssh/rampart/api"
)

// applyPrincipals gives certificate access: a principals file listing
// exactly its own name to each active managed account that sshd holds to
// certificates only, that is a member of ManagedGroup while the block is in
// effect (applySSHD). It removes every other file in the directory, which
// the agent owns: when the block is not verified (sshd -T -C shows another
// setting winning, or the group is missing) no account keeps one. While
// sshd's files are verified but not loaded (its reload failed), accounts
// that have a file keep it, for the sshd that runs was checked with them,
// and new ones wait. An active account left without a file is listed in
// Report.Withheld.
func (p *pass) applyPrincipals() error {
	dirInside := p.h.cfg.PrincipalsDir
	dir := p.h.path(dirInside)
	if err := ensureDir(dir, 0o755); err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		p.rep.Withheld = sortedKeys(p.activeUsers)
		return nil
	}
	in, err := p.inManagedGroup()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, name := range sortedKeys(p.activeUsers) {
		file := path.Join(dir, name)
		old, err := readFileState(file)
		switch {
		case err != nil:
			// Unreadable: neither rewritten nor removed.
			keep[name] = true
			p.rep.problem(KindPrincipals, name, err)
			continue
		case !in[name] || p.restriction == restrictionUnverified,
			p.restriction == restrictionNotLoaded && !old.exists:
			p.rep.Withheld = append(p.rep.Withheld, name)
			continue
		}
		keep[name] = true
		p.writePrincipals(file, name, old)
	}
	// Shared accounts (shared.go) are not the agent's and not held to
	// certificates by the block: their file does not wait for it.
	for _, name := range sortedKeys(p.sharedAccounts()) {
		file := path.Join(dir, name)
		old, err := readFileState(file)
		keep[name] = true
		if err != nil {
			p.rep.problem(KindPrincipals, name, err)
			continue
		}
		p.writePrincipals(file, name, old)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		return nil
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(path.Join(dir, e.Name())); err != nil {
			p.rep.problem(KindPrincipals, api.QuoteName(e.Name()), err)
			continue
		}
		p.logChange(KindPrincipals, api.QuoteName(e.Name()), "remove", "")
	}
	return nil
}

// writePrincipals makes file list exactly name, unless it already does.
func (p *pass) writePrincipals(file, name string, old fileState) {
	if old.same([]byte(name+"\n"), 0o644) {
		return
	}
	if err := writeFileAtomic(file, []byte(name+"\n"), 0o644); err != nil {
		p.rep.problem(KindPrincipals, name, err)
		return
	}
	p.logChange(KindPrincipals, name, "write", "")
}

// removePrincipals removes name's principals file at once (deprovisioning
// does not wait for the principals stage).
func (p *pass) removePrincipals(name string) {
	file := p.h.path(path.Join(p.h.cfg.PrincipalsDir, name))
	err := os.Remove(file)
	switch {
	case err == nil:
		p.logChange(KindPrincipals, name, "remove", "")
	case !errors.Is(err, os.ErrNotExist):
		p.rep.problem(KindPrincipals, name, err)
	}
}
