package jump

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Refusals. Each message is fit to show the person; the audit log gets the
// same reason with the details.
var (
	ErrNotEnrolled    = errors.New("not an enrolled server")
	ErrForbiddenAddr  = targetaddr.ErrForbidden
	ErrNotInProject   = errors.New("you have no access to this server's project")
	ErrLoginDenied    = errors.New("login not permitted")
	ErrUserInactive   = errors.New("your account is disabled")
	ErrWrongPort      = errors.New("that port is not the server's SSH port")
	ErrTargetIdentity = errors.New("the target's host key does not match its enrollment")
	ErrNoHostCert     = errors.New("the target presented no host certificate, and its project requires one")
	ErrBindingRevoked = errors.New("your key's sign-in was revoked; sign in again")
)

// resolve finds the enrolled server the person asked for, by canonical name,
// alt name or access address, on its registered SSH port. The decision never
// depends on DNS: names are looked up in the cluster's own table, and the
// address dialled is the one registered. Both the address asked for and the
// one dialled must pass rule (the same rule registration applies).
func resolve(st *raftstore.State, host string, port uint32, rule *targetaddr.Rule) (*raftstore.Server, net.IP, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := rule.Check(ip, int(port)); err != nil {
			return nil, nil, err
		}
	}
	_, srv, err := st.ServerByAddress(nil, host)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s (%v)", ErrNotEnrolled, host, err)
	}
	if srv == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotEnrolled, host)
	}
	if int(port) != srv.SSHPort {
		return nil, nil, fmt.Errorf("%w: %s listens on %d, not %d", ErrWrongPort, srv.Name, srv.SSHPort, port)
	}
	ip, err := dialAddr(srv, rule)
	if err != nil {
		return nil, nil, err
	}
	return srv, ip, nil
}

// dialAddr is the address the jump dials for srv, or why it never would:
// the registered address must be an IP, on the registered port, that rule
// allows.
func dialAddr(srv *raftstore.Server, rule *targetaddr.Rule) (net.IP, error) {
	a, err := netip.ParseAddr(srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is registered with %q, which is not an IP address", ErrForbiddenAddr, srv.Name, srv.Addr)
	}
	if err := rule.Check(a, srv.SSHPort); err != nil {
		return nil, err
	}
	return net.IP(a.Unmap().AsSlice()), nil
}

// Reachable reports why the jump of this node would refuse srv's
// registered address, or nil: the greeting lists only servers it allows.
func (p *Proxy) Reachable(srv *raftstore.Server) error {
	_, err := dialAddr(srv, &p.cfg.Targets)
	return err
}

// access is what a user may do on a server's project.
type access struct {
	project *raftstore.Project
	grants  []*raftstore.Grant
	// st is the state the decision was read from.
	st *raftstore.State
}

// authorize checks that user is active and a member (through a group) of
// the server's project.
func authorize(st *raftstore.State, user *raftstore.User, srv *raftstore.Server) (*access, error) {
	if user.Status != raftstore.UserActive {
		return nil, ErrUserInactive
	}
	_, grants, err := st.UserProjects(nil, user)
	if err != nil {
		return nil, err
	}
	var mine []*raftstore.Grant
	for _, g := range grants {
		if g.Project == srv.Project {
			mine = append(mine, g)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("%w (%s)", ErrNotInProject, srv.Project)
	}
	_, p, err := st.ProjectByName(nil, srv.Project)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w (%s)", ErrNotInProject, srv.Project)
	}
	return &access{project: p, grants: mine, st: st}, nil
}

// bindingRevoked reports whether the device binding a connection signed in
// with is gone (raftstore.State.BindingRevoked holds the rule).
func bindingRevoked(st *raftstore.State, id Identity) bool {
	return st.BindingRevoked(id.UserID, id.Binding, id.BindingIndex)
}

// loginAllowed: the user's own unix name, or an account the project shares
// that is no person's. (The cluster refuses a shared login that is a
// person's unix name, and never gives a shared login to a person; state from
// before that rule could still hold one, and sharing a person's account
// would let every member log in as them.)
func (a *access) loginAllowed(user *raftstore.User, login string) error {
	if login == user.UnixName {
		return nil
	}
	if slices.Contains(a.project.Settings.SharedLogins, login) {
		_, owner, err := a.st.UserByUnixName(nil, login)
		if err != nil {
			return err
		}
		if owner == nil {
			return nil
		}
		return fmt.Errorf("%w: %q is shared by project %s but is also a person's account", ErrLoginDenied, login, a.project.Name)
	}
	return fmt.Errorf("%w: %q is not your account (%s) and project %s does not share it", ErrLoginDenied, login, user.UnixName, a.project.Name)
}
