package api

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// ClientSetup is what `rampart setup` reads from a node before anyone has
// signed in (GET /v1/client/setup, public): where to jump, the names of the
// nodes' front doors and the host CA keys for the @cert-authority lines,
// and the host name patterns the operator publishes for the cluster's
// servers. It holds nothing a person's sign-in would reveal: the servers a
// person may reach come from the front door, once signed in.
type ClientSetup struct {
	// JumpHost is what people put after -J (ssh.jump_host, else the node's
	// advertised SSH address).
	JumpHost string `json:"jump_host"`
	// NodeNames are the known_hosts patterns of the nodes' front doors: the
	// jump host, and the host names of every node (PublicKnownHostsNames;
	// the nodes' addresses, often private, are left out).
	NodeNames []string `json:"node_names"`
	// HostPatterns are ssh_config host patterns of the cluster's servers
	// (ssh.client_host_patterns), such as "*.prod.example.com".
	HostPatterns []string `json:"host_patterns"`
	// NodeHostCAKeys vouch for the nodes' front doors; HostCAKeys for the
	// targets and the servers the jump presents (authorized_keys lines).
	NodeHostCAKeys []string `json:"node_host_ca_keys"`
	HostCAKeys     []string `json:"host_ca_keys"`
}

// KnownHostsNames returns the known_hosts patterns under which OpenSSH
// looks up a node whose front door listens on sshAddr (host:port) and
// answers to hostNames: each name bare, and as [name]:port when the port is
// not 22. An unspecified address (0.0.0.0) is no name.
func KnownHostsNames(sshAddr string, hostNames []string) []string {
	host, port, err := net.SplitHostPort(sshAddr)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range append([]string{host}, hostNames...) {
		if ip := net.ParseIP(name); ip != nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, name)
		if port != "22" {
			out = append(out, "["+name+"]:"+port)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PublicKnownHostsNames is KnownHostsNames without IP addresses: the names
// a node publishes (ssh.host_names, the jump host), not the addresses it
// listens on.
func PublicKnownHostsNames(sshAddr string, hostNames []string) []string {
	var out []string
	for _, n := range KnownHostsNames(sshAddr, hostNames) {
		host := strings.TrimPrefix(n, "[")
		if i := strings.LastIndex(host, "]:"); i >= 0 {
			host = host[:i]
		}
		if net.ParseIP(host) == nil {
			out = append(out, n)
		}
	}
	return out
}

// JumpHostNames are the known_hosts names under which OpenSSH looks up the
// jump host: its host bare on port 22, else [host]:port. Nothing for a jump
// host CheckJumpHost refuses.
func JumpHostNames(jump string) []string {
	host, port, err := SplitJumpHost(jump)
	switch {
	case err != nil:
		return nil
	case port == "" || port == "22":
		return []string{host}
	}
	return []string{"[" + host + "]:" + port}
}

// CheckHostPattern refuses a published host pattern that is neither a
// host name nor "*." followed by a domain of at least two labels (such as
// *.prod.example.com). Any other wildcard would send hosts the cluster
// does not own (*.com, *a*) through the bastion, under its host CA.
func CheckHostPattern(p string) error {
	name, wild := strings.CutPrefix(p, "*.")
	switch {
	case !ValidServerName(name):
		return fmt.Errorf("host pattern %q: give a host name, or *. and a domain, such as *.prod.example.com (no other wildcards)", p)
	case wild && !strings.Contains(name, "."):
		return fmt.Errorf("host pattern %q covers a whole top-level domain; give *. and at least two labels, such as *.prod.example.com", p)
	}
	return nil
}
