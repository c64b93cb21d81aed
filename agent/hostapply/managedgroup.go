package hostapply

import (
	"fmt"
	"slices"
)

// ensureManagedGroup makes ManagedGroup exist, as a system group. A group
// of that name that is already there is used as it is: the name is reserved
// for it, and membership only ever restricts an account. Only a failed
// groupadd is reported; the accounts then stay out of the group and get no
// principals file (applyPrincipals), so none is reachable unrestricted.
func (p *pass) ensureManagedGroup(db *hostDB) {
	p.managedGroupOK = false
	if db.groups[ManagedGroup] != nil {
		p.managedGroupOK = true
		return
	}
	switch _, taken, err := p.nssTaken("group", ManagedGroup); {
	case err != nil:
		p.rep.problem(KindGroup, ManagedGroup, fmt.Errorf("look up group: %w", err))
		return
	case taken:
		// A directory-only group cannot be given members with usermod.
		p.rep.problem(KindGroup, ManagedGroup, fmt.Errorf("%w: the group is in the name service, not in /etc/group; managed accounts get no certificate access", ErrConflict))
		return
	}
	if _, err := p.runCmd("groupadd", "-r", ManagedGroup); err != nil {
		p.rep.problem(KindGroup, ManagedGroup, fmt.Errorf("groupadd: %w", err))
		return
	}
	p.managedGroupOK = true
	p.logChange(KindGroup, ManagedGroup, "create", "system group for certificates only")
}

// withManagedGroup returns groups (sorted) plus ManagedGroup when it exists:
// usermod -G sets the whole list, so every list the agent gives a managed
// account carries it.
func (p *pass) withManagedGroup(groups []string) []string {
	out := slices.Clone(groups)
	if p.managedGroupOK && !slices.Contains(out, ManagedGroup) {
		out = append(out, ManagedGroup)
	}
	slices.Sort(out)
	return out
}

// inManagedGroup lists the accounts the account database shows as members
// of ManagedGroup.
func (p *pass) inManagedGroup() (map[string]bool, error) {
	db, err := p.snapshot()
	if err != nil {
		return nil, err
	}
	in := map[string]bool{}
	if g := db.groups[ManagedGroup]; g != nil {
		for _, m := range g.Members {
			in[m] = true
		}
	}
	return in, nil
}
