package gateway

import (
	"context"
	"net"
	"net/http"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
	"github.com/rampart-ssh/rampart/gateway/notify"
)

// jumpHost is what people put after -J: ssh.jump_host, or the advertised
// SSH address (127.0.0.1 written as localhost, :22 left out).
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

// requestNotifier delivers access-request notifications until ctx ends;
// the approve commands it sends name this node's bastion address.
func (n *Node) requestNotifier(ctx context.Context) *notify.Notifier {
	return notify.New(ctx, notify.Config{Command: frontdoor.SSHCommand(n.jumpHost()), Now: n.now,
		Client: &http.Client{Timeout: notify.DefaultTimeout}}, control.StoreAuditor{Store: n.store, Now: n.now}, n.logger)
}
