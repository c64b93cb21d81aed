// Package gateway wires one Rampart bastion node: its configuration, its
// replicated store, cluster bootstrap and join, and the HTTPS API (later also
// the SSH front door, the jump proxy and recordings).
package gateway
