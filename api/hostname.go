package api

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// serverNameRE: DNS-ish, lowercase labels of letters, digits, '-' and '_'
// (inventory names often hold one), not starting or ending with a dash or
// underscore, separated by dots. The cluster holds server names to it, and
// the CLI refuses any name the bastion sends that breaks it.
var serverNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?)*$`)

// ValidServerName reports whether s is a server name: DNS-ish labels
// (any case; the cluster keeps them lowercase), at most 253 characters.
func ValidServerName(s string) bool {
	return len(s) <= 253 && serverNameRE.MatchString(strings.ToLower(s))
}

// ValidHostOrIP reports whether s is a DNS-ish name (any case) or an IP
// address.
func ValidHostOrIP(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return ValidServerName(s)
}

// CheckJumpHost refuses a jump host (what people put after -J, and what the
// CLI writes into ssh_config) that is not a host name or IP address with an
// optional :port ([addr]:port for IPv6).
func CheckJumpHost(s string) error {
	_, _, err := SplitJumpHost(s)
	return err
}

// SplitJumpHost splits a jump host into its host and port ("" when it has
// none), refusing anything else (see CheckJumpHost).
func SplitJumpHost(s string) (host, port string, err error) {
	host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", "", fmt.Errorf("jump host %q: the port must be a number from 1 to 65535", s)
		}
		host, port = h, p
	}
	if !ValidHostOrIP(host) {
		return "", "", fmt.Errorf("jump host %q is not a host name or IP address with an optional :port", s)
	}
	return host, port, nil
}

// CheckKnownHostsName refuses a known_hosts name of a node that is not a
// host name or IP address, or one in brackets with a port ([name]:port).
func CheckKnownHostsName(s string) error {
	host := s
	if rest, ok := strings.CutPrefix(s, "["); ok {
		h, p, ok := strings.Cut(rest, "]:")
		n, err := strconv.Atoi(p)
		if !ok || err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return fmt.Errorf("node name %q is not a host name, an IP address or [name]:port", s)
		}
		host = h
	}
	if !ValidHostOrIP(host) {
		return fmt.Errorf("node name %q is not a host name, an IP address or [name]:port", s)
	}
	return nil
}
