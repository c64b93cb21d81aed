// Package targetaddr holds the one rule for where a target server may be:
// the jump proxy applies it before it dials, and every way of registering a
// server (the API, the admin shell, enrollment) before it records one.
package targetaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// ErrForbidden is the error of every refusal; its message is fit to show
// the person or administrator, and the wrapped error says which rule.
var ErrForbidden = errors.New("destination address is not allowed")

// metadataAddrs are cloud instance metadata services, refused whatever the
// configuration says.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// Rule decides which addresses a target may have. The zero Rule refuses
// loopback and knows no listeners of its own.
type Rule struct {
	// AllowLoopback admits targets on loopback addresses, for development
	// and tests where targets run on the node's machine (127.0.0.N).
	// A loopback address the node itself listens on stays refused.
	AllowLoopback bool
	// Listeners are the addresses this node listens on or advertises. A
	// specific address is the bastion itself on every port. A wildcard
	// (0.0.0.0 or ::) stands for every address of this machine, on its
	// port: a node listening on 0.0.0.0:2222 refuses any local address
	// with port 2222.
	Listeners []netip.AddrPort
	// LocalAddrs lists this machine's addresses, for wildcard listeners;
	// nil means its network interfaces' addresses.
	LocalAddrs func() ([]netip.Addr, error)
}

// ParseListeners turns host:port strings (a node's listen and advertise
// addresses) into Listeners, skipping empty and unparsable ones (a config
// check reports those).
func ParseListeners(addrs ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	return out
}

// Check reports why a target at ip, port may not be dialled or registered:
// an address with an IPv6 zone, a metadata service, a link-local,
// unspecified or multicast address, a loopback address (unless
// AllowLoopback), an address this node listens on, or a local address on the
// port of one of its wildcard listeners.
func (r *Rule) Check(ip netip.Addr, port int) error {
	a := ip.Unmap()
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: %q is not an IP address", ErrForbidden, ip)
	case a.Zone() != "":
		// A zone makes the address compare unequal to the same address
		// without one, and the dialler drops it: refused outright.
		return fmt.Errorf("%w: %s carries an IPv6 zone", ErrForbidden, a)
	case slices.Contains(metadataAddrs, a):
		return fmt.Errorf("%w: %s is a metadata service", ErrForbidden, a)
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local", ErrForbidden, a)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("%w: %s", ErrForbidden, a)
	}
	wildcardPort := false
	for _, l := range r.Listeners {
		switch {
		case l.Addr().IsUnspecified():
			wildcardPort = wildcardPort || int(l.Port()) == port
		case l.Addr() == a:
			return fmt.Errorf("%w: %s is this bastion itself", ErrForbidden, a)
		}
	}
	if a.IsLoopback() && !r.AllowLoopback {
		return fmt.Errorf("%w: %s is a loopback address (this bastion's own machine)", ErrForbidden, a)
	}
	if wildcardPort {
		local, err := r.local(a)
		if err != nil {
			return fmt.Errorf("%w: cannot list this bastion's own addresses: %w", ErrForbidden, err)
		}
		if local {
			return fmt.Errorf("%w: %s port %d is this bastion itself", ErrForbidden, a, port)
		}
	}
	return nil
}

// CheckHost is Check for a registered address, which may also be a host
// name: a name is not resolved here (the jump dials only IP addresses and
// refuses a server registered under a name).
func (r *Rule) CheckHost(host string, port int) error {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	return r.Check(ip, port)
}

// local reports whether a is an address of this machine.
func (r *Rule) local(a netip.Addr) (bool, error) {
	if a.IsLoopback() {
		return true, nil
	}
	list := r.LocalAddrs
	if list == nil {
		list = interfaceAddrs
	}
	addrs, err := list()
	if err != nil {
		return false, err
	}
	return slices.Contains(addrs, a), nil
}

func interfaceAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if p, ok := ifa.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(p.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}
