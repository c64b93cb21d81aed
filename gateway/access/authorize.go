package access

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Request is one jump: a signed-in connection asks for host:port.
type Request struct {
	// UserID is the connection's person.
	UserID string
	// Binding is the fingerprint of the device binding the connection
	// signed in with and BindingIndex the raft index that created it; ""
	// and 0 without one.
	Binding      string
	BindingIndex uint64
	// Host and Port are the destination as the client asked for it.
	Host string
	Port uint32
}

// Decision is an allowed jump: who, to which server at which address, and
// what they may do there. The login is checked with Access.Login when the
// inner leg asks for one.
type Decision struct {
	User   *raftstore.User
	Server *raftstore.Server
	// IP is the address the jump dials.
	IP net.IP
	*Access
}

// Authorize decides a jump. The checks run in a fixed order, and the first
// that refuses gives the reason: the person exists, their key's sign-in is
// not revoked, the destination is an enrolled server on its SSH port at an
// address the node dials, and the person is active and a member of the
// server's project. On a refusal the returned user, when not nil, is the
// person the refusal is about (for the audit log).
func (e *Evaluator) Authorize(req Request) (*Decision, *raftstore.User, error) {
	_, user, err := e.st.UserByID(nil, req.UserID)
	if err != nil || user == nil {
		return nil, nil, ErrUserInactive
	}
	if e.st.BindingRevoked(req.UserID, req.Binding, req.BindingIndex) {
		return nil, user, ErrBindingRevoked
	}
	srv, ip, err := e.Resolve(req.Host, req.Port)
	if err != nil {
		return nil, user, err
	}
	acc, err := e.ServerAccess(user, srv)
	if err != nil {
		return nil, user, err
	}
	return &Decision{User: user, Server: srv, IP: ip, Access: acc}, user, nil
}

// Resolve finds the enrolled server a person asked for, by canonical name,
// alt name or access address, on its registered SSH port. The decision
// never depends on DNS: names are looked up in the cluster's own table, and
// the address dialled is the one registered. Both the address asked for
// and the one dialled must pass the node's rule (the same rule registration
// applies).
func (e *Evaluator) Resolve(host string, port uint32) (*raftstore.Server, net.IP, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := e.check(ip, int(port)); err != nil {
			return nil, nil, err
		}
	}
	_, srv, err := e.st.ServerByAddress(nil, host)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s (%v)", ErrNotEnrolled, host, err)
	}
	if srv == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotEnrolled, host)
	}
	if int(port) != srv.SSHPort {
		return nil, nil, fmt.Errorf("%w: %s listens on %d, not %d", ErrWrongPort, srv.Name, srv.SSHPort, port)
	}
	ip, err := e.DialAddr(srv)
	if err != nil {
		return nil, nil, err
	}
	return srv, ip, nil
}

// DialAddr is the address the node's jump dials for srv, or why it never
// would: the registered address must be an IP, on the registered port, that
// the node's rule allows.
func (e *Evaluator) DialAddr(srv *raftstore.Server) (net.IP, error) {
	a, err := netip.ParseAddr(srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is registered with %q, which is not an IP address", ErrForbiddenAddr, srv.Name, srv.Addr)
	}
	if err := e.check(a, srv.SSHPort); err != nil {
		return nil, err
	}
	return net.IP(a.Unmap().AsSlice()), nil
}

// check applies the node's address rule; a node without one (no jump)
// dials nothing.
func (e *Evaluator) check(ip netip.Addr, port int) error {
	if e.targets == nil {
		return fmt.Errorf("%w: this node does not jump to servers", ErrForbiddenAddr)
	}
	return e.targets.Check(ip, port)
}
