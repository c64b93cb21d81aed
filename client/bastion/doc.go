// Package bastion is the CLI's SSH client of a node's front door: it signs
// in with the person's key (running the device flow when the key is not
// bound yet), checks the front door's host certificate against the node
// host CA, and reads `whoami --json`. It finds or creates the key a
// person's ssh offers (keys.go).
package bastion
