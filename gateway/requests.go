package gateway

import (
	"context"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
	"github.com/rampart-ssh/rampart/gateway/notify"
)

// requestNotifier delivers access-request notifications until ctx ends;
// the approve commands it sends name this node's bastion address.
func (n *Node) requestNotifier(ctx context.Context) *notify.Notifier {
	return notify.New(ctx, notify.Config{Command: frontdoor.SSHCommand(n.jumpHost()), Now: n.now,
		AllowPrivate: n.cfg.AccessRequests.AllowPrivateWebhooks}, control.StoreAuditor{Store: n.store, Now: n.now}, n.logger)
}
