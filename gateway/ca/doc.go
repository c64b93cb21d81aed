// Package ca holds Rampart's CA keys, sealed under a key-encryption key that never enters raft,
// and signs with them: cluster TLS certificates, SSH host certificates, and per-hop user certificates.
package ca
