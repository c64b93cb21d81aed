package hostapply

import (
	"fmt"
	"slices"

	"github.com/rampart-ssh/rampart/api"
)

// Status is the lifecycle state of a desired account.
type Status string

const (
	// StatusActive: the account exists and may log in ("" means active).
	StatusActive Status = "active"
	// StatusDisabled: the account is kept, locked and expired, with no
	// groups, no principals file and no processes.
	StatusDisabled Status = "disabled"
	// StatusDeleted: as disabled, and removed after Config.DeleteGrace. A
	// managed account missing from Desired is treated as deleted.
	StatusDeleted Status = "deleted"
)

// User is an account the server must have, with the cluster's fleet-stable
// uid.
type User struct {
	Name string
	UID  uint32
	// Groups are supplementary groups, each named in Desired.Groups.
	Groups []string
	// Status is StatusActive when empty.
	Status Status
	// Shell is Config.DefaultShell when empty.
	Shell string
}

// Group is a group the server must have, with the cluster's gid.
type Group struct {
	Name string
	GID  uint32
}

// SudoCommand is one command a SudoRule allows, rendered "Path Args...".
// Args nil allows any arguments; Args empty but not nil allows none
// (rendered as Path ""). Path is absolute, or "ALL" alone in its rule.
type SudoCommand struct {
	Path string
	Args []string
}

// SudoRule is one entitlement as a server renders it: the cluster's
// structured rule and the managed users and groups it is granted to.
type SudoRule struct {
	Commands []SudoCommand
	// RunAs is the target account; root when empty.
	RunAs    string
	NoPasswd bool
	NoExec   bool
	// SetEnv lets the user set variables on sudo's command line (which sudo
	// then does not filter); root-equivalent, as the cluster documents.
	SetEnv  bool
	EnvKeep []string
	// Users and Groups get the rule. Names that are not managed, active
	// accounts (or managed groups) here are dropped from the file.
	Users  []string
	Groups []string
}

// Desired is everything the server must look like.
type Desired struct {
	Users  []User
	Groups []Group
	// Sudo maps an entitlement name to its rule; each becomes
	// /etc/sudoers.d/rampart-<name>. Managed sudo files of entitlements not
	// here are removed.
	Sudo map[string]SudoRule
	// TrustedCAKeys are the user CA public keys sshd trusts (authorized_keys
	// format; old and new during a rotation).
	TrustedCAKeys []string
	// HostCertificates are host certificates (authorized_keys format), each
	// for one of the server's host keys.
	HostCertificates []string
	// AllowPersonalKeys lets managed accounts log in with keys from their
	// own authorized_keys as well as with certificates (the project's
	// weaker mode). When false, sshd gives managed accounts no
	// authorized-keys file or command: only certificates open them.
	AllowPersonalKeys bool
	// SharedAccounts are the project's shared logins (e.g. deploy):
	// accounts that already exist on the host, which the agent never
	// creates or changes, and which get a principals file naming the login.
	SharedAccounts []string
}

// wantState is Desired after validation: only what may reach a command.
type wantState struct {
	users      []User // in the given order, Status and Shell filled in
	userByName map[string]*User
	groups     []Group
	groupNames map[string]bool
	// refusedUsers and refusedGroups are valid names whose entries were
	// refused: a managed one is left as it is, neither repaired nor
	// deprovisioned, until the cluster sends something valid.
	refusedUsers  map[string]bool
	refusedGroups map[string]bool
	// sudo holds valid rules; sudoRefused names the refused ones (whose old
	// files stay).
	sudo        map[string]SudoRule
	sudoRefused map[string]bool
	// sshdRefused: the sshd inputs are invalid; leave sshd's files alone.
	sshdRefused bool
	caKeys      []string
	hostCerts   []hostCert
	// personalKeys is Desired.AllowPersonalKeys.
	personalKeys bool
	// shared are the shared logins that are valid names.
	shared []string
}

// validate checks d and returns what may be applied, reporting the rest.
func (h *Host) validate(d Desired, rep *Report) *wantState {
	w := &wantState{
		userByName: map[string]*User{}, groupNames: map[string]bool{},
		refusedUsers: map[string]bool{}, refusedGroups: map[string]bool{},
	}
	uids := map[uint32]string{}
	names := map[string]bool{}
	for _, u := range d.Users {
		if u.Status == "" {
			u.Status = StatusActive
		}
		if u.Shell == "" {
			u.Shell = h.cfg.DefaultShell
		}
		err := h.checkName("user", u.Name)
		if err == nil {
			err = h.checkID("uid", u.UID)
		}
		if err == nil && u.Status != StatusActive && u.Status != StatusDisabled && u.Status != StatusDeleted {
			err = fmt.Errorf("%w: status %q is not active, disabled or deleted", ErrInvalid, u.Status)
		}
		if err == nil {
			err = checkShell(u.Shell)
		}
		if err == nil && names[u.Name] {
			err = fmt.Errorf("%w: user %s is listed twice", ErrInvalid, u.Name)
		}
		if err == nil && uids[u.UID] != "" {
			err = fmt.Errorf("%w: uid %d is also user %s's", ErrInvalid, u.UID, uids[u.UID])
		}
		if err != nil {
			rep.problem(KindUser, api.QuoteName(u.Name), err)
			if api.IsPOSIXName(u.Name) {
				w.refusedUsers[u.Name] = true
			}
			continue
		}
		u.Groups = slices.Clone(u.Groups)
		w.users = append(w.users, u)
		uids[u.UID] = u.Name
		names[u.Name] = true
	}
	for i := range w.users {
		w.userByName[w.users[i].Name] = &w.users[i]
	}
	gids := map[uint32]string{}
	for _, g := range d.Groups {
		err := h.checkName("group", g.Name)
		if err == nil {
			err = h.checkID("gid", g.GID)
		}
		switch {
		case err != nil:
		case w.groupNames[g.Name]:
			err = fmt.Errorf("%w: group %s is listed twice", ErrInvalid, g.Name)
		case gids[g.GID] != "":
			err = fmt.Errorf("%w: gid %d is also group %s's", ErrInvalid, g.GID, gids[g.GID])
		case w.userByName[g.Name] != nil:
			// A managed user's private group has the user's name.
			err = fmt.Errorf("%w: group %s has the name of user %s's private group", ErrConflict, g.Name, g.Name)
		case uids[g.GID] != "":
			err = fmt.Errorf("%w: gid %d is user %s's private group gid", ErrConflict, g.GID, uids[g.GID])
		}
		if err != nil {
			rep.problem(KindGroup, api.QuoteName(g.Name), err)
			if api.IsPOSIXName(g.Name) {
				w.refusedGroups[g.Name] = true
			}
			continue
		}
		w.groups = append(w.groups, g)
		w.groupNames[g.Name] = true
		gids[g.GID] = g.Name
	}
	// Supplementary groups must be desired groups; anything else is dropped
	// (and never reaches usermod -G).
	for i := range w.users {
		u := &w.users[i]
		var keep []string
		for _, g := range u.Groups {
			switch {
			case !w.groupNames[g]:
				rep.problem(KindUser, u.Name, fmt.Errorf("%w: supplementary group %q is not a desired group; skipped", ErrInvalid, api.QuoteName(g)))
			case !slices.Contains(keep, g):
				keep = append(keep, g)
			}
		}
		slices.Sort(keep)
		u.Groups = keep
	}
	w.sudo, w.sudoRefused = map[string]SudoRule{}, map[string]bool{}
	for name, r := range d.Sudo {
		if err := h.checkSudoRule(name, r); err != nil {
			rep.problem(KindSudo, api.QuoteName(name), err)
			if api.IsEntitlementName(name) {
				w.sudoRefused[name] = true
			}
			continue
		}
		w.sudo[name] = r
	}
	w.caKeys, w.hostCerts, w.sshdRefused = h.checkSSHDInputs(d, rep)
	w.personalKeys = d.AllowPersonalKeys
	w.shared = validShared(d.SharedAccounts, rep)
	return w
}
