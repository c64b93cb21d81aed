package hostapply

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// applyUsers creates, repairs and deprovisions the managed accounts.
func (p *pass) applyUsers() error {
	db, err := p.snapshot()
	if err != nil {
		return err
	}
	if err := p.resolvePending(db); err != nil {
		return err
	}
	p.activeUsers = map[string]bool{}
	// Managed accounts the cluster no longer lists are deleted ones; they
	// go first, so that a uid or name they free (an IdP rename) is
	// available to the desired accounts in the same pass.
	for _, name := range sortedKeys(p.st.Users) {
		if p.w.userByName[name] == nil && !p.w.refusedUsers[name] {
			if err := p.reconcileUser(db, name, nil); err != nil {
				return err
			}
		}
	}
	for i := range p.w.users {
		if err := p.reconcileUser(db, p.w.users[i].Name, &p.w.users[i]); err != nil {
			return err
		}
	}
	return nil
}

// reconcileUser brings one account to u (nil: deleted). Only a state file
// error is returned; everything else is reported.
func (p *pass) reconcileUser(db *hostDB, name string, u *User) error {
	status := StatusDeleted
	if u != nil {
		status = u.Status
	}
	rec, e := p.st.Users[name], db.users[name]
	switch {
	case rec == nil && status == StatusActive:
		return p.createUser(db, u, false)
	case rec == nil:
		// Never created here, and not wanted: nothing to do.
		return nil
	case u != nil && u.UID != rec.UID:
		p.rep.problem(KindUser, name, fmt.Errorf("%w: managed account has uid %d and the cluster now says %d; not changed", ErrConflict, rec.UID, u.UID))
		return nil
	case e == nil && status == StatusActive:
		// Deleted by hand (or never finished): make it again.
		return p.createUser(db, u, true)
	case e == nil:
		p.removePrincipals(name)
		p.dropOrphanGroup(db, name, rec.UID)
		delete(p.st.Users, name)
		p.logChange(KindUser, name, "forget", "gone from the host")
		return p.saveState()
	case e.UID != rec.UID:
		// Renumbered or replaced by hand: not provably the agent's account
		// any more, so it is not forced back.
		p.rep.problem(KindUser, name, fmt.Errorf("%w: managed account now has uid %d, recorded %d; not changed", ErrConflict, e.UID, rec.UID))
		return nil
	case status == StatusActive:
		return p.repairUser(db, u, e, rec)
	default:
		return p.deprovision(db, name, e, rec, status == StatusDeleted)
	}
}

func (p *pass) homeOf(name string) string { return path.Join(p.h.cfg.HomeBase, name) }

// memberGroups are u's supplementary groups that the agent manages and
// that exist, and ManagedGroup.
func (p *pass) memberGroups(u *User) []string {
	var out []string
	for _, g := range u.Groups {
		if p.usableGroups[g] {
			out = append(out, g)
		}
	}
	return p.withManagedGroup(out)
}

// createUser makes u's private group and account unless a name or id is
// taken by something the agent does not manage. again: the account was the
// agent's and is being recreated.
func (p *pass) createUser(db *hostDB, u *User, again bool) error {
	name := u.Name
	uid := strconv.FormatUint(uint64(u.UID), 10)
	conflict := func(format string, args ...any) error {
		p.rep.problem(KindUser, name, fmt.Errorf("%w: "+format, append([]any{ErrConflict}, args...)...))
		return nil
	}
	if e := db.users[name]; e != nil {
		return conflict("an account named %s (uid %d) exists and is not managed by rampart", name, e.UID)
	}
	if e := db.uids[u.UID]; e != nil {
		if o := p.st.Users[e.Name]; o != nil && o.UID == u.UID {
			// A renamed IdP user: the old account keeps the uid until it
			// is deleted after its grace period; then this one is made.
			return conflict("uid %d still belongs to managed account %s, which the cluster no longer lists under that name; %s is created once %s is deleted", u.UID, e.Name, name, e.Name)
		}
		return conflict("uid %d belongs to account %s, not managed by rampart", u.UID, e.Name)
	}
	if p.st.Groups[name] != nil {
		return conflict("a managed group is named %s, the account's private group name", name)
	}
	// The private group may be left from an interrupted or undone creation
	// of this very account (the state file still lists it): reuse it.
	rec := p.st.Users[name]
	reuseGroup := false
	if g := db.groups[name]; g != nil {
		if rec == nil || g.GID != u.UID {
			return conflict("a group named %s (gid %d) exists and is not managed by rampart", name, g.GID)
		}
		reuseGroup = true
	} else if g := db.gids[u.UID]; g != nil {
		return conflict("gid %d, for the private group, belongs to group %s", u.UID, g.Name)
	}
	checks := [][2]string{{"passwd", name}, {"passwd", uid}}
	if !reuseGroup {
		checks = append(checks, [2]string{"group", name}, [2]string{"group", uid})
	}
	for _, c := range checks {
		holder, taken, err := p.nssTaken(c[0], c[1])
		if err != nil {
			p.rep.problem(KindUser, name, fmt.Errorf("look up %s %s: %w", c[0], c[1], err))
			return nil
		}
		if taken {
			return conflict("%s %s is taken by %s in the name service", c[0], c[1], holder)
		}
	}
	// Recorded first, so that a crash after useradd leaves an account the
	// next pass recognises (resolvePending) rather than a conflict.
	if rec == nil {
		rec = &managedUser{UID: u.UID, CreatedAt: p.now}
		p.st.Users[name] = rec
	}
	rec.Pending, rec.DeleteAfter = true, time.Time{}
	if err := p.saveState(); err != nil {
		return err
	}
	undo := func(cause error) error {
		if !reuseGroup {
			if _, err := p.runCmd("groupdel", name); err != nil {
				cause = errors.Join(cause, fmt.Errorf("undo groupadd: %w", err))
			}
		}
		delete(p.st.Users, name)
		p.rep.problem(KindUser, name, cause)
		return p.saveState()
	}
	if !reuseGroup {
		if _, err := p.runCmd("groupadd", "-g", uid, name); err != nil {
			delete(p.st.Users, name)
			p.rep.problem(KindUser, name, fmt.Errorf("groupadd (private group): %w", err))
			return p.saveState()
		}
	}
	argv := []string{"useradd", "-u", uid, "-g", name}
	if gs := p.memberGroups(u); len(gs) > 0 {
		argv = append(argv, "-G", strings.Join(gs, ","))
	}
	// -p '*': no password, but not locked ('!'), which sshd would refuse
	// under UsePAM no even for a certificate.
	argv = append(argv, "-m", "-d", p.homeOf(name), "-s", u.Shell, "-c", Marker, "-p", "*", name)
	if _, err := p.runCmd(argv...); err != nil {
		// useradd can fail after writing the account (a home it could not
		// make): then the account is the agent's, with a problem to report.
		if e, lerr := p.lookupUser(name); lerr == nil && e != nil && e.UID == u.UID && e.Gecos == Marker {
			rec.Pending = false
			p.rep.problem(KindUser, name, fmt.Errorf("created with errors: %w", err))
			return p.saveState()
		}
		return undo(fmt.Errorf("useradd: %w", err))
	}
	rec.Pending = false
	if err := p.saveState(); err != nil {
		return err
	}
	p.activeUsers[name] = true
	action := "create"
	if again {
		action = "recreate"
	}
	p.logChange(KindUser, name, action, "uid "+uid)
	return nil
}

// lookupUser asks the name service for one account.
func (p *pass) lookupUser(name string) (*passwdEntry, error) {
	out, err := p.runCmd("getent", "passwd", name)
	if exitCode(err) == 2 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, ok := parsePasswd(strings.TrimSpace(string(out)))
	if !ok {
		return nil, fmt.Errorf("getent passwd %s: unparsable entry", name)
	}
	return e, nil
}

// repairUser puts back whatever was changed on an active managed account.
func (p *pass) repairUser(db *hostDB, u *User, e *passwdEntry, rec *managedUser) error {
	name := u.Name
	uid := strconv.FormatUint(uint64(u.UID), 10)
	var args, what []string
	add := func(field string, a ...string) {
		what = append(what, field)
		args = append(args, a...)
	}
	privateOK := true
	if g := db.groups[name]; g == nil {
		if o := db.gids[u.UID]; o != nil {
			privateOK = false
			p.rep.problem(KindUser, name, fmt.Errorf("%w: private group is gone and gid %d belongs to group %s", ErrConflict, u.UID, o.Name))
		} else if _, err := p.runCmd("groupadd", "-g", uid, name); err != nil {
			privateOK = false
			p.rep.problem(KindUser, name, fmt.Errorf("recreate private group: %w", err))
		} else {
			p.logChange(KindUser, name, "update", "private group recreated")
		}
	} else if g.GID != u.UID {
		privateOK = false
		p.rep.problem(KindUser, name, fmt.Errorf("%w: private group %s has gid %d, want %d; not changed", ErrConflict, name, g.GID, u.UID))
	}
	if privateOK && e.GID != u.UID {
		add("primary group", "-g", name)
	}
	if e.Gecos != Marker {
		add("comment", "-c", Marker)
	}
	if home := p.homeOf(name); e.Home != home {
		add("home", "-d", home)
	}
	if e.Shell != u.Shell {
		add("shell", "-s", u.Shell)
	}
	want := p.memberGroups(u)
	if have := db.supplementary(name); !slices.Equal(have, want) {
		add("groups", "-G", strings.Join(want, ","))
	}
	sh := db.shadow[name]
	if sh == nil || sh.Password != "*" {
		add("password field", "-p", "*")
	}
	if sh == nil || sh.Expire != "" {
		add("expiry", "-e", "")
	}
	if !rec.DeleteAfter.IsZero() {
		rec.DeleteAfter = time.Time{}
		if err := p.saveState(); err != nil {
			return err
		}
	}
	if len(args) > 0 {
		if _, err := p.runCmd(append(append([]string{"usermod"}, args...), name)...); err != nil {
			// Not marked active: without its principals file the account
			// cannot log in until a pass repairs it.
			p.rep.problem(KindUser, name, fmt.Errorf("usermod: %w", err))
			return nil
		}
		p.logChange(KindUser, name, "update", strings.Join(what, ", "))
	}
	p.activeUsers[name] = true
	return nil
}

// deprovision locks and expires an account, empties its groups, removes
// its principals file and ends its processes; a deleted one is removed
// once its grace period is over.
func (p *pass) deprovision(db *hostDB, name string, e *passwdEntry, rec *managedUser, deleted bool) error {
	var args, what []string
	sh := db.shadow[name]
	if sh == nil || !strings.HasPrefix(sh.Password, "!") {
		// Lock as well as expire: under UsePAM no sshd refuses a locked
		// account; under UsePAM yes only the expiry stops a certificate.
		args, what = append(args, "-L"), append(what, "locked")
	}
	if sh == nil || sh.Expire != "1" {
		args, what = append(args, "-e", "1"), append(what, "expired")
	}
	// A disabled account stays in ManagedGroup: it exists, so sshd must
	// keep it to certificates only.
	if want := p.withManagedGroup(nil); !slices.Equal(db.supplementary(name), want) {
		args, what = append(args, "-G", strings.Join(want, ",")), append(what, "groups emptied")
	}
	if len(args) > 0 {
		if _, err := p.runCmd(append(append([]string{"usermod"}, args...), name)...); err != nil {
			p.rep.problem(KindUser, name, fmt.Errorf("deprovision: usermod: %w", err))
		} else {
			p.logChange(KindUser, name, "deprovision", strings.Join(what, ", "))
		}
	}
	p.removePrincipals(name)
	if p.hasProcesses(rec.UID) {
		if err := p.h.killUser(p.ctx, rec.UID); err != nil {
			p.rep.problem(KindUser, name, fmt.Errorf("kill processes: %w", err))
		}
	}
	if !deleted {
		if !rec.DeleteAfter.IsZero() {
			rec.DeleteAfter = time.Time{}
			return p.saveState()
		}
		return nil
	}
	if rec.DeleteAfter.IsZero() {
		rec.DeleteAfter = p.now.Add(max(p.h.cfg.DeleteGrace, 0))
		if err := p.saveState(); err != nil {
			return err
		}
	}
	if p.now.Before(rec.DeleteAfter) {
		return nil
	}
	return p.deleteUser(db, name, e, rec)
}

// deleteUser removes a deprovisioned account whose grace period is over.
func (p *pass) deleteUser(db *hostDB, name string, e *passwdEntry, rec *managedUser) error {
	argv := []string{"userdel"}
	detail := "home kept"
	home := p.homeOf(name)
	if p.h.cfg.HomeOnDelete == HomeArchive {
		switch fi, err := os.Lstat(p.h.path(home)); {
		case e.Home != home:
			// Never archive and remove a home that is not HomeBase/name:
			// it may be shared, or "/".
			p.rep.problem(KindUser, name, fmt.Errorf("home %s is not %s; kept", e.Home, home))
		case err != nil || !fi.IsDir():
			detail = "no home to archive"
		default:
			archive := path.Join(p.h.cfg.ArchiveDir, fmt.Sprintf("%s-%d-%s.tar.gz", name, rec.UID, p.now.UTC().Format("20060102T150405Z")))
			if err := ensureDir(p.h.path(p.h.cfg.ArchiveDir), 0o700); err != nil {
				p.rep.problem(KindUser, name, fmt.Errorf("archive dir: %w", err))
				return nil
			}
			if _, err := p.runCmd("tar", "--create", "--gzip", "--file", archive, "--directory", p.h.cfg.HomeBase, "--", name); err != nil {
				p.rep.problem(KindUser, name, fmt.Errorf("archive home (account kept): %w", err))
				return nil
			}
			argv = append(argv, "-r")
			detail = "home archived to " + archive
		}
	}
	if _, err := p.runCmd(append(argv, name)...); err != nil {
		p.rep.problem(KindUser, name, fmt.Errorf("userdel: %w", err))
		return nil
	}
	delete(db.users, name)
	delete(db.uids, rec.UID)
	delete(db.shadow, name)
	// userdel removes the private group with USERGROUPS_ENAB; without it
	// the group is left, and removed here.
	if g, err := p.lookupGroup(name); err == nil && g != nil && g.GID == rec.UID {
		if _, err := p.runCmd("groupdel", name); err != nil {
			p.rep.problem(KindUser, name, fmt.Errorf("groupdel (private group): %w", err))
		}
	}
	if g, err := p.lookupGroup(name); err == nil && g == nil {
		delete(db.groups, name)
		delete(db.gids, rec.UID)
	}
	delete(p.st.Users, name)
	if err := p.saveState(); err != nil {
		return err
	}
	p.logChange(KindUser, name, "delete", detail)
	return nil
}

// lookupGroup asks the name service for one group.
func (p *pass) lookupGroup(name string) (*groupEntry, error) {
	out, err := p.runCmd("getent", "group", name)
	if exitCode(err) == 2 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	g, ok := parseGroup(strings.TrimSpace(string(out)))
	if !ok {
		return nil, fmt.Errorf("getent group %s: unparsable entry", name)
	}
	return g, nil
}

// dropOrphanGroup removes the private group of a managed account that is
// gone, if nothing uses it as a primary group.
func (p *pass) dropOrphanGroup(db *hostDB, name string, uid uint32) {
	g := db.groups[name]
	if g == nil || g.GID != uid {
		return
	}
	for _, e := range db.users {
		if e.GID == uid {
			return
		}
	}
	if _, err := p.runCmd("groupdel", name); err != nil {
		p.rep.problem(KindUser, name, fmt.Errorf("groupdel (private group): %w", err))
	}
}

// hasProcesses reports whether uid may own processes; true when unknown.
func (p *pass) hasProcesses(uid uint32) bool {
	if p.h.processUIDs == nil {
		return true
	}
	if p.procUIDs == nil {
		m, err := p.h.processUIDs()
		if err != nil {
			return true
		}
		p.procUIDs = m
	}
	return p.procUIDs[uid]
}
