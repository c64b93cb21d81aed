package gateway

import "net"

// jumpHost is what people put after -J: ssh.jump_host, else the advertised
// SSH address (its bare host on port 22; localhost for a loopback node).
// The greeting prints it, and GET /v1/client/setup serves it to `rampart
// setup`.
func (n *Node) jumpHost() string {
	if n.cfg.SSH.JumpHost != "" {
		return n.cfg.SSH.JumpHost
	}
	host, port, _ := net.SplitHostPort(n.advertise().SSH)
	if port == "22" {
		return friendlyHost(host)
	}
	return net.JoinHostPort(friendlyHost(host), port)
}
