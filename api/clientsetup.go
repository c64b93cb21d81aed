package api

import (
	"fmt"
	"net"
	"regexp"
	"slices"
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
	// NodeNames are the known_hosts patterns of the nodes' front doors
	// (KnownHostsNames of every node).
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

// hostPatternRe is an ssh_config host pattern the CLI may write: names,
// dots, dashes and the wildcards * and ?.
var hostPatternRe = regexp.MustCompile(`^[A-Za-z0-9*?._-]+$`)

// CheckHostPattern refuses a published host pattern that ssh_config cannot
// hold as one word, or that would send every host (github.com too) through
// the bastion.
func CheckHostPattern(p string) error {
	if !hostPatternRe.MatchString(p) {
		return fmt.Errorf("host pattern %q: only letters, digits, '.', '-', '_', '*' and '?' are allowed", p)
	}
	for _, r := range p {
		if r != '*' && r != '?' && r != '.' {
			return nil
		}
	}
	return fmt.Errorf("host pattern %q matches every host; give a domain, such as *.prod.example.com", p)
}
