package hostapply

import (
	"fmt"
	"os"
	"path"
	"slices"

	"github.com/rampart-ssh/rampart/api"
)

// Single-user mode (Config.SingleUser): the agent runs as one unprivileged
// account, next to an sshd that account runs itself (`make dev`'s demo
// target), and serves that account only. A pass writes sshd's files (the
// project's user CA keys, the host certificates, the TrustedUserCAKeys,
// AuthorizedPrincipalsFile and HostCertificate settings, checked with
// sshd -t and sshd -T) and one principals file, for the account, listing
// its own name, when the cluster lets someone log in to it: it is one of
// the project's shared logins, or an active person's unix name. It creates,
// changes and removes no account or group, writes no sudo rule, kills no
// process, and reloads only the sshd of Config.SSHDPidFile. Everything
// else in Desired is ignored. The sshd is the account's own, so its other
// ways in (the account's authorized_keys) are its owner's business: the
// agent does not close them.

// checkSingleUser refuses a state file that lists managed accounts or
// groups: single-user mode would leave them as they are, neither repaired
// nor deprovisioned.
func (st *managedState) checkSingleUser(file string) error {
	if len(st.Users) > 0 || len(st.Groups) > 0 {
		return fmt.Errorf("state file %s lists %d accounts and %d groups the agent manages: single-user mode manages none; use another state file or run the agent in its normal mode", file, len(st.Users), len(st.Groups))
	}
	return nil
}

// makeSingleUserDirs makes the directories of the agent's own sshd files,
// which live in its data dir (the system's /etc/ssh always exists).
func (p *pass) makeSingleUserDirs() error {
	for _, d := range []string{path.Dir(p.h.cfg.TrustedCAKeysFile), p.h.cfg.HostCertDir} {
		if err := ensureDir(p.h.path(d), 0o755); err != nil {
			p.rep.problem(KindSSHD, d, err)
		}
	}
	return nil
}

// singleUserDesired is the part of d single-user mode looks at: sshd's
// inputs, the shared logins, and the person whose unix name is the
// account's, if any (without groups). The rest is not this mode's to
// validate or report on.
func (h *Host) singleUserDesired(d Desired) Desired {
	out := Desired{TrustedCAKeys: d.TrustedCAKeys, HostCertificates: d.HostCertificates,
		AllowPersonalKeys: d.AllowPersonalKeys, SharedAccounts: d.SharedAccounts}
	for _, u := range d.Users {
		if u.Name == h.cfg.SingleUser {
			u.Groups = nil
			out.Users = append(out.Users, u)
		}
	}
	return out
}

// singleUserLogin reports whether the cluster lets someone log in to the
// account: a shared login of the project, or an active person's unix name.
func (p *pass) singleUserLogin() bool {
	name := p.h.cfg.SingleUser
	if slices.Contains(p.w.shared, name) {
		return true
	}
	u := p.w.userByName[name]
	return u != nil && u.Status == StatusActive
}

// applySingleUserPrincipals is applyPrincipals in single-user mode: the
// account's file when singleUserLogin, and no other file in the directory,
// which the agent owns. The file waits for sshd's files, as in the normal
// mode: an sshd update refused or failed in any part leaves no new access
// behind.
func (p *pass) applySingleUserPrincipals() error {
	dirInside := p.h.cfg.PrincipalsDir
	dir := p.h.path(dirInside)
	if err := ensureDir(dir, 0o755); err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		return nil
	}
	name := p.h.cfg.SingleUser
	keep := ""
	if p.singleUserLogin() {
		file := path.Join(dir, name)
		old, err := readFileState(file)
		switch {
		case err != nil:
			keep = name // unreadable: neither rewritten nor removed
			p.rep.problem(KindPrincipals, name, err)
		case p.w.sshdRefused || slices.ContainsFunc(p.rep.Problems, func(q Problem) bool { return q.Kind == KindSSHD }):
			if old.exists {
				keep = name
			} else {
				p.rep.Withheld = append(p.rep.Withheld, name)
			}
		default:
			keep = name
			p.writePrincipals(file, name, old)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		return nil
	}
	for _, e := range entries {
		if e.Name() == keep {
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
