package targetaddr

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	// This machine: 10.0.0.5 and 192.0.2.7 (plus loopback). The node
	// listens on every address for SSH and on 10.0.0.5 for the API.
	machine := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}, nil
	}
	prod := &Rule{Listeners: ParseListeners("0.0.0.0:22", "10.0.0.5:8443", "[::]:22", "", "bad"), LocalAddrs: machine}
	dev := &Rule{AllowLoopback: true, Listeners: ParseListeners("127.0.0.1:2222", "127.0.0.1:8443"), LocalAddrs: machine}
	devWild := &Rule{AllowLoopback: true, Listeners: ParseListeners("0.0.0.0:2222"), LocalAddrs: machine}
	for _, tc := range []struct {
		name string
		rule *Rule
		addr string
		port int
		ok   bool
	}{
		{"ok/remote-target", prod, "10.0.0.9", 22, true},
		{"ok/local-address-other-port", prod, "192.0.2.7", 2222, true},
		{"ok/dev-loopback-target", dev, "127.0.0.31", 22, true},
		{"ok/dev-wildcard-other-port", devWild, "127.0.0.31", 22, true},
		{"fail/loopback", prod, "127.0.0.31", 22, false},
		{"fail/loopback-v6", prod, "::1", 22, false},
		{"fail/wildcard-listener-local-addr", prod, "192.0.2.7", 22, false},
		{"fail/wildcard-listener-local-v6", prod, "2001:db8::7", 22, false},
		{"fail/wildcard-listener-v4-mapped", prod, "::ffff:192.0.2.7", 22, false},
		{"fail/listener-address-any-port", prod, "10.0.0.5", 2200, false},
		{"fail/dev-own-loopback", dev, "127.0.0.1", 22, false},
		{"fail/dev-wildcard-loopback-same-port", devWild, "127.0.0.31", 2222, false},
		{"fail/metadata", dev, "169.254.169.254", 80, false},
		{"fail/metadata-v6-with-zone", dev, "fd00:ec2::254%eth0", 80, false},
		{"fail/own-address-with-zone", prod, "2001:db8::7%eth0", 22, false},
		{"fail/link-local", dev, "fe80::1", 22, false},
		{"fail/unspecified", dev, "0.0.0.0", 22, false},
		{"fail/multicast", dev, "224.0.0.1", 22, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Check(netip.MustParseAddr(tc.addr), tc.port)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrForbidden)) {
				t.Fatalf("Check(%s, %d) = %v, want ok=%v", tc.addr, tc.port, err, tc.ok)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	r := &Rule{}
	if err := r.CheckHost("web-1.internal", 22); err != nil {
		t.Errorf("a host name: %v", err)
	}
	if err := r.CheckHost("127.0.0.1", 22); !errors.Is(err, ErrForbidden) {
		t.Errorf("loopback: %v", err)
	}
}
