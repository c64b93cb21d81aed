// Package ca holds Rampart's keys: it seals private keys under the node's
// key-encryption key (which never enters raft), runs the cluster TLS CA that
// signs node and agent certificates, and (later) mints SSH certificates.
package ca
