package sshsetup

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/api"
)

// Desired is what the person's ssh should know of one cluster.
type Desired struct {
	// Cluster names the cluster in comments (its API address).
	Cluster string
	// JumpHost is what goes after -J (host or host:port).
	JumpHost string
	// NodeNames are the known_hosts patterns of the nodes' front doors.
	NodeNames []string
	// NodeHostCAKeys and HostCAKeys are authorized_keys lines of the node
	// host CA (the bastion's names) and the target host CA (every other
	// name).
	NodeHostCAKeys []string
	HostCAKeys     []string
	// Servers are names of servers the person may reach, HostPatterns the
	// patterns the operator publishes; both go through the bastion.
	Servers      []string
	HostPatterns []string
	// UnixName is the login on the cluster's servers; empty before the
	// first sign-in.
	UnixName string
	// IdentityFile is the key bound to the person (a private key, or the
	// public half of a key in ssh-agent); empty before `rampart login`.
	IdentityFile string
	// KnownHostsFile, when set, is written as UserKnownHostsFile: for a
	// $HOME that is not the account's home, where ssh would not look.
	KnownHostsFile string
}

// Markers around every block setup writes into a person's file.
const (
	beginMark = "# BEGIN rampart"
	endMark   = "# END rampart"
)

// KnownHostsBlock is the known_hosts block: the node host CA for the nodes'
// names (and the jump host's), the target host CA for the names sent
// through the bastion only, the published host patterns and the servers
// the person may reach, never for every name: a server enrolled under
// github.com must not be trusted as github.com. Without patterns or
// servers (before the first sign-in) the target host CA has no line.
func (d Desired) KnownHostsBlock() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (written by `rampart setup`; `rampart setup --remove` takes it out)\n", beginMark)
	nodeNames := d.nodeNames()
	nodes := strings.Join(nodeNames, ",")
	targets := d.targets()
	for _, n := range nodeNames {
		targets = append(targets, "!"+n)
	}
	for _, k := range d.NodeHostCAKeys {
		if nodes != "" {
			fmt.Fprintf(&b, "@cert-authority %s %s\n", nodes, strings.TrimSpace(k))
		}
	}
	for _, k := range d.HostCAKeys {
		if len(targets) > len(nodeNames) {
			fmt.Fprintf(&b, "@cert-authority %s %s\n", strings.Join(targets, ","), strings.TrimSpace(k))
		}
	}
	b.WriteString(endMark + "\n")
	return b.String()
}

// nodeNames are the known_hosts names of the nodes: those the cluster
// sent, and the jump host's.
func (d Desired) nodeNames() []string {
	names := append(slices.Clone(d.NodeNames), api.JumpHostNames(d.JumpHost)...)
	slices.Sort(names)
	return slices.Compact(names)
}

// targets are the names sent through the bastion: the person's servers
// and the published patterns, sorted.
func (d Desired) targets() []string {
	targets := append(append([]string{}, d.Servers...), d.HostPatterns...)
	slices.Sort(targets)
	return slices.Compact(targets)
}

// IncludeBlock is the block at the top of ssh_config that includes the
// file at included. It must come before any Host or Match line: an Include
// under one applies only to that block's hosts.
func IncludeBlock(included string) string {
	return fmt.Sprintf("%s (written by `rampart setup`; `rampart setup --remove` takes it out)\nInclude %q\n%s\n",
		beginMark, included, endMark)
}

// jumpParts splits the jump host into host and port ("" for 22).
func jumpParts(jump string) (host, port string) {
	if h, p, err := net.SplitHostPort(jump); err == nil {
		if p == "22" {
			p = ""
		}
		return h, p
	}
	return jump, ""
}

// bastionNames are the bastion's names as ssh_config Host patterns: the
// known_hosts names without their [name]:port forms, and the jump host.
func (d Desired) bastionNames() []string {
	host, _ := jumpParts(d.JumpHost)
	names := []string{host}
	for _, n := range d.NodeNames {
		if !strings.HasPrefix(n, "[") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Included is the ssh_config file setup owns: the bastion's port, login and
// key, and every server name and published pattern sent through it with
// the person's unix name.
func (d Desired) Included() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `rampart setup` for the cluster at %s.\n", d.Cluster)
	b.WriteString("# `rampart setup` and `rampart login` rewrite this file: do not edit it.\n\n")
	host, port := jumpParts(d.JumpHost)
	bastions := d.bastionNames()
	fmt.Fprintf(&b, "# The bastion.\nHost %s\n", strings.Join(bastions, " "))
	if port != "" {
		fmt.Fprintf(&b, "  Port %s\n", port)
	}
	d.identity(&b)
	targets := d.targets()
	if len(targets) == 0 {
		b.WriteString("\n# No server names yet: `rampart login`, then `rampart setup` again, adds those you may reach.\n")
		return b.String()
	}
	for _, n := range bastions {
		targets = append(targets, "!"+n)
	}
	fmt.Fprintf(&b, "\n# The cluster's servers, through the bastion.\nHost %s\n", strings.Join(targets, " "))
	jump := host
	if port != "" {
		jump = net.JoinHostPort(host, port)
	}
	fmt.Fprintf(&b, "  ProxyJump %s\n", jump)
	d.identity(&b)
	return b.String()
}

// identity writes the login and key lines of a Host block.
func (d Desired) identity(b *strings.Builder) {
	if d.UnixName != "" {
		fmt.Fprintf(b, "  User %s\n", d.UnixName)
	}
	if d.IdentityFile != "" {
		fmt.Fprintf(b, "  IdentityFile %q\n  IdentitiesOnly yes\n", d.IdentityFile)
	}
	if d.KnownHostsFile != "" {
		fmt.Fprintf(b, "  UserKnownHostsFile %q\n", d.KnownHostsFile)
	}
}
