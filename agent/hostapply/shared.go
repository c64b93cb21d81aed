package hostapply

import (
	"fmt"
	"slices"

	"github.com/rampart-ssh/rampart/api"
)

// Shared accounts. A project may let its members log in to an account no
// person owns (e.g. deploy). The account is the host's: it must exist before
// the agent hears of it, and the agent never creates, changes or removes it.
// The agent only gives it a principals file listing the principal the
// cluster's per-hop certificate carries for that login, which is the login
// itself, so sshd lets such a certificate in (and no other).

// sharedAccounts returns the shared logins that may get a principals file:
// accounts that exist here with a uid at or above MinID, that the agent does
// not manage and that are not a desired person's account. Every other one is
// reported and gets no file.
func (p *pass) sharedAccounts() map[string]bool {
	out := map[string]bool{}
	if len(p.w.shared) == 0 {
		return out
	}
	db, err := p.snapshot()
	if err != nil {
		p.rep.problem(KindPrincipals, "shared accounts", err)
		return out
	}
	for _, name := range p.w.shared {
		e := db.users[name]
		switch {
		case p.st.Users[name] != nil || p.w.userByName[name] != nil || p.w.refusedUsers[name]:
			err = fmt.Errorf("%w: shared login %s is a managed person's account; no shared principals file", ErrConflict, name)
		case e == nil:
			err = fmt.Errorf("%w: shared login %s has no account on this server (create it; the agent never does)", ErrInvalid, name)
		case e.UID < p.h.cfg.MinID:
			err = fmt.Errorf("%w: shared login %s has uid %d, below %d (system range)", ErrInvalid, name, e.UID, p.h.cfg.MinID)
		default:
			out[name] = true
			continue
		}
		p.rep.problem(KindPrincipals, name, err)
	}
	return out
}

// validShared keeps the shared logins that are POSIX names, sorted and
// unique; the rest are reported.
func validShared(names []string, rep *Report) []string {
	var out []string
	for _, n := range names {
		if !api.IsPOSIXName(n) || n == "root" {
			rep.problem(KindPrincipals, api.QuoteName(n), fmt.Errorf("%w: shared login %q is not a usable account name", ErrInvalid, n))
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
