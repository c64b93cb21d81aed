package hostapply

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// applyGroups creates the desired groups the agent manages, recreating one
// deleted by hand. Membership is set later (applyGroupMembers), once the
// accounts exist.
func (p *pass) applyGroups() error {
	db, err := p.snapshot()
	if err != nil {
		return err
	}
	if err := p.resolvePending(db); err != nil {
		return err
	}
	p.ensureManagedGroup(db)
	p.usableGroups = map[string]bool{}
	for _, g := range p.w.groups {
		rec, e := p.st.Groups[g.Name], db.groups[g.Name]
		switch {
		case rec == nil:
			err = p.createGroup(db, g, "create")
		case rec.GID != g.GID:
			p.rep.problem(KindGroup, g.Name, fmt.Errorf("%w: managed group has gid %d and the cluster now says %d; not changed", ErrConflict, rec.GID, g.GID))
		case e == nil:
			err = p.createGroup(db, g, "recreate")
		case e.GID != rec.GID:
			// Someone changed it (or replaced it): the agent does not renumber
			// a group, which would strand every file it owns.
			p.rep.problem(KindGroup, g.Name, fmt.Errorf("%w: managed group now has gid %d, recorded %d; not changed", ErrConflict, e.GID, rec.GID))
		default:
			p.usableGroups[g.Name] = true
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// createGroup runs groupadd for g unless its name or gid is taken. Only a
// state file error is returned; everything else is reported.
func (p *pass) createGroup(db *hostDB, g Group, action string) error {
	gid := strconv.FormatUint(uint64(g.GID), 10)
	conflict := func(format string, args ...any) error {
		p.rep.problem(KindGroup, g.Name, fmt.Errorf("%w: "+format, append([]any{ErrConflict}, args...)...))
		return nil
	}
	if e := db.groups[g.Name]; e != nil {
		return conflict("a group named %s (gid %d) exists and is not managed by rampart", g.Name, e.GID)
	}
	if e := db.gids[g.GID]; e != nil {
		return conflict("gid %d belongs to group %s, not managed by rampart", g.GID, e.Name)
	}
	if p.st.Users[g.Name] != nil {
		return conflict("%s is a managed user's private group", g.Name)
	}
	for _, key := range []string{g.Name, gid} {
		holder, taken, err := p.nssTaken("group", key)
		if err != nil {
			p.rep.problem(KindGroup, g.Name, fmt.Errorf("look up group %s: %w", key, err))
			return nil
		}
		if taken {
			return conflict("group %s is taken by %s in the name service", key, holder)
		}
	}
	rec := &managedGroup{GID: g.GID, Pending: true, CreatedAt: p.now}
	p.st.Groups[g.Name] = rec
	if err := p.saveState(); err != nil {
		return err
	}
	if _, err := p.runCmd("groupadd", "-g", gid, g.Name); err != nil {
		delete(p.st.Groups, g.Name)
		p.rep.problem(KindGroup, g.Name, fmt.Errorf("groupadd: %w", err))
		return p.saveState()
	}
	rec.Pending = false
	if err := p.saveState(); err != nil {
		return err
	}
	p.usableGroups[g.Name] = true
	p.logChange(KindGroup, g.Name, action, "gid "+gid)
	return nil
}

// applyGroupMembers makes each managed group's members exactly the active
// managed users who want it (removing anyone added by hand), and deletes
// the managed groups no longer desired.
func (p *pass) applyGroupMembers() error {
	db, err := p.snapshot()
	if err != nil {
		return err
	}
	p.membersOK = map[string]bool{}
	for _, g := range p.w.groups {
		e := db.groups[g.Name]
		if !p.usableGroups[g.Name] || e == nil || e.GID != g.GID {
			continue
		}
		// sudo matches %group on the primary group too, and an account's
		// primary group is not in the member list gpasswd sets.
		var primary []string
		for _, u := range db.users {
			if u.GID == g.GID {
				primary = append(primary, u.Name)
			}
		}
		slices.Sort(primary)
		var want []string
		for name := range p.activeUsers {
			if slices.Contains(p.w.userByName[name].Groups, g.Name) {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		have := slices.Clone(e.Members)
		slices.Sort(have)
		have = slices.Compact(have)
		if !slices.Equal(want, have) {
			if _, err := p.runCmd("gpasswd", "-M", strings.Join(want, ","), g.Name); err != nil {
				p.rep.problem(KindGroup, g.Name, fmt.Errorf("set members (left out of sudoers): %w", err))
				continue
			}
			p.logChange(KindGroup, g.Name, "update", "members "+strings.Join(want, ","))
		}
		if len(primary) > 0 {
			p.rep.problem(KindGroup, g.Name, fmt.Errorf("%w: accounts %s have the group as their primary group; left out of sudoers", ErrConflict, strings.Join(primary, ",")))
			continue
		}
		p.membersOK[g.Name] = true
	}
	for _, name := range sortedKeys(p.st.Groups) {
		if p.w.groupNames[name] || p.w.refusedGroups[name] {
			continue
		}
		rec, e := p.st.Groups[name], db.groups[name]
		switch {
		case e == nil:
			delete(p.st.Groups, name)
			p.logChange(KindGroup, name, "forget", "gone from the host")
		case e.GID != rec.GID:
			delete(p.st.Groups, name)
			p.rep.problem(KindGroup, name, fmt.Errorf("%w: managed group now has gid %d, recorded %d; no longer managed, not deleted", ErrConflict, e.GID, rec.GID))
		default:
			if _, err := p.runCmd("groupdel", name); err != nil {
				p.rep.problem(KindGroup, name, fmt.Errorf("groupdel: %w", err))
				continue
			}
			delete(p.st.Groups, name)
			p.logChange(KindGroup, name, "delete", "")
		}
		if err := p.saveState(); err != nil {
			return err
		}
	}
	return nil
}

// resolvePending settles state entries written just before a groupadd or
// useradd that a crash may have interrupted.
func (p *pass) resolvePending(db *hostDB) error {
	changed := false
	for name, rec := range p.st.Groups {
		if !rec.Pending {
			continue
		}
		changed = true
		if e := db.groups[name]; e != nil && e.GID == rec.GID {
			rec.Pending = false
		} else {
			delete(p.st.Groups, name)
		}
	}
	for name, rec := range p.st.Users {
		if !rec.Pending {
			continue
		}
		e := db.users[name]
		switch {
		case e == nil:
			// useradd never ran: the entry stays pending so that the
			// private group groupadd may have made is reused, not a
			// conflict.
		case e.UID == rec.UID && e.Gecos == Marker:
			rec.Pending = false
			changed = true
		default:
			delete(p.st.Users, name)
			changed = true
		}
	}
	if changed {
		return p.saveState()
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
