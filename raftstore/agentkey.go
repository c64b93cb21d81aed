package raftstore

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// The agent key of a server is the one public key whose certificate the
// cluster accepts from the server's agent (Server.AgentKeyHash). Enrollment
// records it (ServerUpsert with SetAgentKey); a renewal moves it to the new
// key (ServerAgentKey). Every certificate issued for an older key is
// refused from then on, however long it is still valid.

func init() {
	registerCommand(ServerAgentKeyType, func() Command { return new(ServerAgentKey) })
}

// HashAgentKey is how an agent key is recorded: the hex SHA-256 of the
// public key's PKIX DER encoding.
func HashAgentKey(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("agent key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// validAgentKeyHash accepts what HashAgentKey returns: 64 lowercase hex
// digits.
func validAgentKeyHash(what, h string) error {
	if len(h) != 2*sha256.Size {
		return invalidf("%s is %d characters, want %d hex digits", what, len(h), 2*sha256.Size)
	}
	for _, r := range h {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return invalidf("%s is not lowercase hex", what)
		}
	}
	return nil
}

// agentKey sets the agent key fields of s, about to replace old (nil for a
// new server): the command's with SetAgentKey, else the recorded ones.
func (c *ServerUpsert) agentKey(s, old *Server) {
	switch {
	case !c.SetAgentKey && old != nil:
		s.AgentKeyHash, s.PrevAgentKeyHash, s.AgentKeySince = old.AgentKeyHash, old.PrevAgentKeyHash, old.AgentKeySince
	case !c.SetAgentKey:
		s.AgentKeyHash, s.PrevAgentKeyHash, s.AgentKeySince = "", "", time.Time{}
	case old != nil && old.AgentKeyHash == s.AgentKeyHash && old.PrevAgentKeyHash == "":
		// The same key enrolled again: nothing about it changes.
		s.PrevAgentKeyHash, s.AgentKeySince = "", old.AgentKeySince
	default:
		s.PrevAgentKeyHash, s.AgentKeySince = "", c.Now
	}
}

// ServerAgentKey moves a server's agent key from Replaces, the key of the
// certificate that asked for the renewal, to KeyHash: from then on only a
// certificate for KeyHash is accepted, and one for Replaces only to fetch
// KeyHash's certificate again. It is a compare-and-set:
//
//   - the server is gone: ErrNotFound;
//   - the key is already KeyHash, moved from Replaces: nothing is written
//     (a renewal repeated after its answer was lost, or handled by a node
//     that had not applied the first one yet);
//   - the recorded key is neither Replaces nor empty (a server enrolled
//     before keys were recorded): ErrConflict, the caller's certificate
//     was replaced meanwhile;
//   - KeyHash is the key the last renewal retired: ErrInvalid, since it
//     would bring that key's certificates back.
//
// Like AgentEventsAppend it moves neither the server's ModifyIndex nor the
// servers table's index: it is bookkeeping of the agent's credential, and
// bumping the table would wake every agent's long-poll in the fleet.
type ServerAgentKey struct {
	ID string
	// KeyHash is HashAgentKey of the new key.
	KeyHash string
	// Replaces is HashAgentKey of the key the renewal was asked with.
	Replaces string
	Now      time.Time
}

func (c *ServerAgentKey) Type() MessageType { return ServerAgentKeyType }

func (c *ServerAgentKey) Validate() error {
	if err := validServerID(c.ID); err != nil {
		return err
	}
	if err := validAgentKeyHash("new agent key hash", c.KeyHash); err != nil {
		return fmt.Errorf("server %s: %w", c.ID, err)
	}
	if err := validAgentKeyHash("replaced agent key hash", c.Replaces); err != nil {
		return fmt.Errorf("server %s: %w", c.ID, err)
	}
	if c.KeyHash == c.Replaces {
		return invalidf("server %s: a renewal needs a new agent key", c.ID)
	}
	if c.Now.IsZero() {
		return invalidf("server %s: agent key change without a time", c.ID)
	}
	return nil
}

func (c *ServerAgentKey) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServers, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("agent key of %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("server %s: %w", c.ID, ErrNotFound)
	}
	s := *raw.(*Server)
	switch {
	case s.AgentKeyHash == c.KeyHash && s.PrevAgentKeyHash == c.Replaces:
		return &s, nil // done already: nothing to write, nobody to wake
	case s.AgentKeyHash != "" && s.AgentKeyHash != c.Replaces:
		return nil, fmt.Errorf("%w: server %s: the agent key the renewal was asked with is no longer the server's", ErrConflict, c.ID)
	case c.KeyHash == s.PrevAgentKeyHash:
		return nil, invalidf("server %s: the new agent key is the one the last renewal retired", c.ID)
	}
	s.PrevAgentKeyHash, s.AgentKeyHash, s.AgentKeySince = c.Replaces, c.KeyHash, c.Now
	if err := tx.Insert(tableServers, &s); err != nil {
		return nil, fmt.Errorf("update server %s: %w", c.ID, err)
	}
	return &s, nil
}
