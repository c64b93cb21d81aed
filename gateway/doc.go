// Package gateway wires one Rampart bastion node: it loads the node's
// configuration and data directory, opens the replicated store, bootstraps
// or joins the cluster, and builds the rooms (authority, enroll, control,
// access, the front door, the jump, the HTTPS API, the audit writer and the
// recording archive) from explicit dependencies. It holds no service logic
// of its own; only cmd/rampartd imports it.
package gateway
