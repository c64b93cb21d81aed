package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

const hostKeyFile = "ssh_host_ed25519_key"

// loadHostKey returns the node's SSH host key, creating it on first start.
func (n *Node) loadHostKey() (gossh.Signer, error) {
	pemBytes, err := n.dir.readFile(hostKeyFile)
	if err != nil {
		return nil, err
	}
	if pemBytes == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := gossh.MarshalPrivateKey(priv, "rampart node "+n.id)
		if err != nil {
			return nil, err
		}
		pemBytes = pemEncode(block)
		if err := n.dir.writeFile(pemBytes, hostKeyFile); err != nil {
			return nil, err
		}
	}
	signer, err := gossh.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.dir.path(hostKeyFile), err)
	}
	return signer, nil
}

// sshHostNames are the principals of the node's host certificate: what users
// type to reach it, the jump host's host among them (so the front door's
// certificate covers what people put after -J, and enrollment refuses that
// name to targets).
func (n *Node) sshHostNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	for _, h := range n.cfg.SSH.HostNames {
		add(h)
	}
	if host, _, err := api.SplitJumpHost(n.cfg.SSH.JumpHost); err == nil {
		add(host)
	}
	for _, addr := range []string{n.advertise().SSH, n.cfg.Listen.SSH} {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err == nil && ip != nil && !ip.IsUnspecified() {
			add(host)
			if friendlyHost(host) == "localhost" {
				add("localhost")
			}
		}
	}
	return names
}
