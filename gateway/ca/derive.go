package ca

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// deriveKey returns length bytes derived from the KEK for label (HKDF-SHA256).
// Every node holds the same KEK, so every node derives the same bytes, and
// nothing derived reveals the KEK.
func (k *KEK) deriveKey(label string, length int) ([]byte, error) {
	return hkdf.Key(sha256.New, k.raw, nil, "rampart:"+label, length)
}

// InnerHostKey returns the plain host key the jump proxy presents for a
// target (next to its host certificate). It is derived from the KEK and the
// server's id, so it is the same on every node and across restarts: clients
// that pin plain keys are not asked to re-trust it.
func (k *KEK) InnerHostKey(serverID string) (ssh.Signer, error) {
	seed, err := k.deriveKey("inner-host-key:"+serverID, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive inner host key: %w", err)
	}
	return ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
}

// BackupKeySize is the length of the key BackupKey returns.
const BackupKeySize = 32

// BackupKey returns the key that authenticates cluster backups
// (HMAC-SHA256, gateway/backup). It is derived from the KEK for that purpose
// alone: every node of a cluster derives the same key, a cluster with
// another KEK derives another one, and the key is never written to raft or
// to a backup.
func (k *KEK) BackupKey() ([]byte, error) {
	key, err := k.deriveKey("backup-hmac", BackupKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive backup key: %w", err)
	}
	return key, nil
}

// ConsoleShareKey returns the key that signs the console's share links
// (HMAC-SHA256, gateway/console): the same on every node of a cluster, so a
// link made on one node opens on any.
func (k *KEK) ConsoleShareKey() ([]byte, error) {
	key, err := k.deriveKey("console-share-hmac", 32)
	if err != nil {
		return nil, fmt.Errorf("derive console share key: %w", err)
	}
	return key, nil
}

// ConsoleSignInKey returns the key that seals the console's sign-ins under
// way into their browser cookie (AES-256-GCM, gateway/console): the same on
// every node of a cluster, so a sign-in started on one node completes on
// any.
func (k *KEK) ConsoleSignInKey() ([]byte, error) {
	key, err := k.deriveKey("console-sign-in-aead", 32)
	if err != nil {
		return nil, fmt.Errorf("derive console sign-in key: %w", err)
	}
	return key, nil
}

// AuditKey returns the key that signs the audit log's checkpoints
// (raftstore.AuditCheckpoint). Like BackupKey it is derived from the KEK
// for that purpose alone: every node signs and verifies with the same key,
// nothing outside the cluster can make a checkpoint it accepts, and the key
// is never written to raft.
func (k *KEK) AuditKey() (ed25519.PrivateKey, error) {
	seed, err := k.deriveKey("audit-checkpoint", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive audit key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// AuditSpillKey returns the key that authenticates the lines of a node's
// audit spill on disk (HMAC-SHA256, gateway/auditlog): someone who can
// write the data directory but does not hold the KEK cannot put an event
// in it, nor take one out unseen. Derived from the KEK for that purpose
// alone; never written anywhere.
func (k *KEK) AuditSpillKey() ([]byte, error) {
	key, err := k.deriveKey("audit-spill-hmac", 32)
	if err != nil {
		return nil, fmt.Errorf("derive audit spill key: %w", err)
	}
	return key, nil
}
