package jump

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Refusals. Each message is fit to show the person; the audit log gets the
// same reason with the details.
var (
	ErrNotEnrolled    = errors.New("not an enrolled server")
	ErrForbiddenAddr  = errors.New("destination address is not allowed")
	ErrNotInProject   = errors.New("you have no access to this server's project")
	ErrLoginDenied    = errors.New("login not permitted")
	ErrUserInactive   = errors.New("your account is disabled")
	ErrWrongPort      = errors.New("that port is not the server's SSH port")
	ErrTargetIdentity = errors.New("the target's host key does not match its enrollment")
)

// metadataAddrs are cloud instance metadata services, refused whatever the
// configuration says.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// forbiddenIP reports why an address may never be dialled: metadata
// services, link-local, unspecified, multicast and the node's own addresses.
// Loopback is allowed (a target may live on this host in tests and small
// setups) unless it is one of the node's own addresses.
func forbiddenIP(ip net.IP, own []net.IP) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return fmt.Errorf("%w: %q", ErrForbiddenAddr, ip)
	}
	a = a.Unmap()
	switch {
	case slices.Contains(metadataAddrs, a):
		return fmt.Errorf("%w: %s is a metadata service", ErrForbiddenAddr, a)
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local", ErrForbiddenAddr, a)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("%w: %s", ErrForbiddenAddr, a)
	}
	for _, o := range own {
		if oa, ok := netip.AddrFromSlice(o); ok && oa.Unmap() == a {
			return fmt.Errorf("%w: %s is this bastion itself", ErrForbiddenAddr, a)
		}
	}
	return nil
}

// resolve finds the enrolled server the person asked for, by canonical name,
// alt name or access address, on its registered SSH port. The decision never
// depends on DNS: names are looked up in the cluster's own table, and the
// address dialled is the one registered.
func resolve(st *raftstore.State, host string, port uint32, own []net.IP) (*raftstore.Server, net.IP, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip := net.ParseIP(host); ip != nil {
		if err := forbiddenIP(ip, own); err != nil {
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
	ip := net.ParseIP(srv.Addr)
	if ip == nil {
		return nil, nil, fmt.Errorf("%w: %s is registered with %q, which is not an IP address", ErrForbiddenAddr, srv.Name, srv.Addr)
	}
	if err := forbiddenIP(ip, own); err != nil {
		return nil, nil, err
	}
	return srv, ip, nil
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
