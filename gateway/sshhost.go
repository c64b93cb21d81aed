package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

const (
	hostKeyFile = "ssh_host_ed25519_key"
	// hostCAID is the first target host CA; nodeHostCAID the first node
	// host CA.
	hostCAID     = "host-ca-1"
	nodeHostCAID = "node-host-ca-1"
	// hostCertValidity: the node re-certifies its key at every start.
	hostCertValidity = 365 * 24 * time.Hour
)

// loadHostKey returns the node's SSH host key, creating it on first start.
func (n *Node) loadHostKey() (gossh.Signer, error) {
	pemBytes, err := n.dir.readFile(hostKeyFile)
	if err != nil {
		return nil, err
	}
	if pemBytes == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := gossh.MarshalPrivateKey(priv, "rampart node "+n.id)
		if err != nil {
			return nil, err
		}
		pemBytes = pemEncode(block)
		if err := n.dir.writeFile(pemBytes, hostKeyFile); err != nil {
			return nil, err
		}
	}
	signer, err := gossh.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.dir.path(hostKeyFile), err)
	}
	return signer, nil
}

// sshCA returns the cluster's SSH CA of kind (the node host CA or the
// target host CA), creating it under id if the cluster has none yet. Two
// nodes racing to create it both end up with the one raft kept.
func (n *Node) sshCA(ctx context.Context, kind raftstore.CAKind, id string) (*ca.SSHCA, error) {
	confirmed := false
	for attempt := 0; attempt < 3; attempt++ {
		_, rec, err := n.store.State().ActiveCA(nil, kind, "")
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return ca.OpenSSHCA(rec.ID, rec.SealedKey, n.kek)
		}
		if !confirmed {
			// A CA is created only when the cluster has none: check what
			// the leader has committed first, or a replica still replaying
			// its log after a restart would think the CA missing.
			if err := n.store.ConsistentRead(ctx); err != nil {
				return nil, err
			}
			confirmed = true
			continue
		}
		c, sealed, pub, err := ca.NewSSHCAKey(id, n.kek)
		if err != nil {
			return nil, err
		}
		_, err = n.store.Apply(ctx, &raftstore.CAUpsert{Record: raftstore.CARecord{
			ID: id, Kind: kind, Algorithm: gossh.KeyAlgoED25519, PublicKey: pub, SealedKey: sealed, State: raftstore.CAActive,
		}, Now: n.now().UTC()})
		if err == nil {
			n.logger.Info("created SSH CA", "ca_kind", string(kind), "ca", id)
			return c, nil
		}
		// Another node won the race, or the leader was lost after the
		// write was sent: either way, look again at what was committed.
		if !errors.Is(err, raftstore.ErrConflict) && !errors.Is(err, raftstore.ErrOutcomeUnknown) {
			return nil, fmt.Errorf("create the cluster %s CA: %w", kind, err)
		}
		if err := n.store.ConsistentRead(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("create the cluster %s CA: lost the race three times", kind)
}

// hostSigners returns the node's plain host key and its host certificate,
// signed by the node host CA (created on first use, also on the first start
// of a cluster made before the CA was split). It makes sure the target host
// CA exists too, so that /v1/ca/host answers from the start.
func (n *Node) hostSigners(ctx context.Context) ([]gossh.Signer, error) {
	key, err := n.loadHostKey()
	if err != nil {
		return nil, err
	}
	if _, err := n.sshCA(ctx, raftstore.CAHost, hostCAID); err != nil {
		return nil, err
	}
	hca, err := n.sshCA(ctx, raftstore.CANodeHost, nodeHostCAID)
	if err != nil {
		return nil, err
	}
	cert, err := hca.SignHost(key.PublicKey(), "rampart node "+n.id, n.sshHostNames(), hostCertValidity, n.now())
	if err != nil {
		return nil, err
	}
	certSigner, err := gossh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	return []gossh.Signer{key, certSigner}, nil
}

// sshHostNames are the principals of the node's host certificate: what users
// type to reach it.
func (n *Node) sshHostNames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	for _, h := range n.cfg.SSH.HostNames {
		add(h)
	}
	for _, addr := range []string{n.advertise().SSH, n.cfg.Listen.SSH} {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err == nil && ip != nil && !ip.IsUnspecified() {
			add(host)
			if friendlyHost(host) == "localhost" {
				add("localhost")
			}
		}
	}
	return names
}
