package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/raftstore"
)

// innerHostCertValidity: the inner server's host certificate only has to
// outlive the handshake it is presented in.
const innerHostCertValidity = time.Hour

// keyring gives the jump proxy its keys: it unseals CA keys from raft with
// the node's KEK (caching them in memory), creates a project's user CA on
// first use, and derives the inner servers' host keys.
type keyring struct {
	n *Node

	mu  sync.Mutex
	cas map[string]*ca.SSHCA // by CA record id
	// inner caches the inner server's signers per server version, name
	// typed and host CA, so that a burst of jumps signs once.
	inner map[innerKey]innerSigners
}

type innerKey struct {
	serverID    string
	serverIndex uint64
	requested   string
	caID        string
}

type innerSigners struct {
	signers []gossh.Signer
	renewAt time.Time
}

// maxInnerCache bounds the inner signer cache; when full it starts over.
const maxInnerCache = 4096

var _ jump.Minter = (*keyring)(nil)

func newKeyring(n *Node) *keyring {
	return &keyring{n: n, cas: map[string]*ca.SSHCA{}, inner: map[innerKey]innerSigners{}}
}

// open returns the unsealed CA of a record.
func (k *keyring) open(rec *raftstore.CARecord) (*ca.SSHCA, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.cas[rec.ID]; ok {
		return c, nil
	}
	c, err := ca.OpenSSHCA(rec.ID, rec.SealedKey, k.n.kek)
	if err != nil {
		return nil, err
	}
	k.cas[rec.ID] = c
	return c, nil
}

// userCA returns the project's active user CA, creating it on first use.
// Two nodes racing to create it both end up with the one raft kept.
func (k *keyring) userCA(ctx context.Context, project string) (*ca.SSHCA, error) {
	confirmed := false
	for attempt := 0; attempt < 3; attempt++ {
		_, rec, err := k.n.store.State().ActiveCA(nil, raftstore.CAUser, project)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return k.open(rec)
		}
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		id := "user-" + project + "-" + hex.EncodeToString(b)
		if !confirmed {
			// A CA is created only when the cluster has none: check what
			// the leader has committed first, or a replica still replaying
			// its log after a restart would think the CA missing.
			if err := k.n.store.ConsistentRead(ctx); err != nil {
				return nil, err
			}
			confirmed = true
			continue
		}
		c, sealed, pub, err := ca.NewSSHCAKey(id, k.n.kek)
		if err != nil {
			return nil, err
		}
		_, err = k.n.store.Apply(ctx, &raftstore.CAUpsert{Record: raftstore.CARecord{
			ID: id, Kind: raftstore.CAUser, Project: project, Algorithm: gossh.KeyAlgoED25519, PublicKey: pub, SealedKey: sealed, State: raftstore.CAActive,
		}, Now: k.n.now().UTC()})
		if err == nil {
			k.n.logger.Info("created user CA", "project", project, "ca", id)
			return c, nil
		}
		// Another node won the race, or the leader was lost after the
		// write was sent: either way, look again at what was committed.
		if !errors.Is(err, raftstore.ErrConflict) && !errors.Is(err, raftstore.ErrOutcomeUnknown) {
			return nil, fmt.Errorf("create the user CA of %s: %w", project, err)
		}
		if err := k.n.store.ConsistentRead(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("create the user CA of %s: lost the race three times", project)
}

// MintUser signs a per-hop certificate with the project's user CA.
func (k *keyring) MintUser(ctx context.Context, req jump.CertRequest) (*gossh.Certificate, error) {
	c, err := k.userCA(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	return c.MintUser(ca.UserCertRequest{
		PublicKey: req.PublicKey, UnixName: req.UnixName, UserLogin: req.UserLogin, SessionID: req.SessionID,
		Server: req.Server, Project: req.Project, SourceAddresses: req.SourceAddresses, TTL: req.TTL,
		AllowPortForwarding: req.AllowPortForwarding, AllowAgentForwarding: req.AllowAgentForwarding,
	}, k.n.now(), rand.Reader)
}

// InnerHostSigners returns the inner server's plain host key (stable per
// target, the same on every node) and a certificate for it naming what the
// person typed, the server's names and its address.
func (k *keyring) InnerHostSigners(srv *raftstore.Server, requested string) ([]gossh.Signer, error) {
	_, rec, err := k.n.store.State().ActiveCA(nil, raftstore.CAHost, "")
	if err != nil || rec == nil {
		return nil, fmt.Errorf("no active host CA: %v", err)
	}
	key := innerKey{serverID: srv.ID, serverIndex: srv.ModifyIndex, requested: requested, caID: rec.ID}
	now := k.n.now()
	k.mu.Lock()
	cached, ok := k.inner[key]
	k.mu.Unlock()
	if ok && now.Before(cached.renewAt) {
		return cached.signers, nil
	}
	signers, err := k.signInner(srv, requested, rec)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if len(k.inner) >= maxInnerCache {
		clear(k.inner)
	}
	k.inner[key] = innerSigners{signers: signers, renewAt: now.Add(innerHostCertValidity / 2)}
	k.mu.Unlock()
	return signers, nil
}

// signInner derives the inner host key and certifies it with the host CA.
func (k *keyring) signInner(srv *raftstore.Server, requested string, rec *raftstore.CARecord) ([]gossh.Signer, error) {
	plain, err := k.n.kek.InnerHostKey(srv.ID)
	if err != nil {
		return nil, err
	}
	hostCA, err := k.open(rec)
	if err != nil {
		return nil, err
	}
	names := append([]string{requested, srv.Name}, srv.AltNames...)
	names = append(names, srv.Addr)
	cert, err := hostCA.SignHostForNames(plain.PublicKey(), "rampart jump "+srv.Name, names, innerHostCertValidity, k.n.now())
	if err != nil {
		return nil, err
	}
	certSigner, err := gossh.NewCertSigner(cert, plain)
	if err != nil {
		return nil, err
	}
	return []gossh.Signer{plain, certSigner}, nil
}

// HostCAKeys are the target host CA keys a target's certificate may be
// signed by (never the node host CA's: a target is not a node).
func (k *keyring) HostCAKeys() ([]gossh.PublicKey, error) {
	_, recs, err := k.n.store.State().CAsFor(nil, raftstore.CAHost, "")
	if err != nil {
		return nil, err
	}
	var out []gossh.PublicKey
	for _, r := range recs {
		if r.State == raftstore.CARetired {
			continue
		}
		pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(r.PublicKey))
		if err != nil {
			continue
		}
		out = append(out, pk)
	}
	return out, nil
}

// NewCAKey makes a CA key for a rotation (the admin shell's `ca rotate ...
// begin`) and seals it with this node's KEK: the shell gets the public half,
// the sealed key and its SSH key type, never the private key.
func (k *keyring) NewCAKey(id, alg string) (publicKey string, sealed []byte, keyAlg string, err error) {
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, k.n.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// hostCARetry is the pause after a failed re-signing of the front door's
// host certificate.
const hostCARetry = 5 * time.Second

// watchHostCA keeps the front door's host certificate signed by the active
// node host CA: when a rotation promotes a new key (or rolls back), every node
// sees the change in its replica and re-signs its own host key at once, so
// clients that trust only the new key reach it without a restart. signedBy
// is the authorized_keys line of the CA that signed the certificate the
// front door started with. It runs until ctx ends.
func (k *keyring) watchHostCA(ctx context.Context, hostKey gossh.Signer, signedBy string, set func(cert gossh.Signer)) {
	var index uint64
	for ctx.Err() == nil {
		var active *raftstore.CARecord
		idx, err := raftstore.BlockingQuery(ctx, k.n.store, index, 0, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			i, rec, err := st.ActiveCA(ws, raftstore.CANodeHost, "")
			active = rec
			return i, err
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil && active != nil && strings.TrimSpace(active.PublicKey) != strings.TrimSpace(signedBy) {
			var cert gossh.Signer
			if cert, err = k.signNodeHostKey(hostKey, active); err == nil {
				set(cert)
				signedBy = active.PublicKey
				k.n.logger.Info("re-signed the front door's host certificate", "ca", active.ID)
			}
		}
		if err != nil {
			k.n.logger.Error("node host CA watch", "err", err)
			t := time.NewTimer(hostCARetry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		index = idx
	}
}

// signNodeHostKey certifies the node's own host key with the node host CA of rec,
// for the names users type to reach the node.
func (k *keyring) signNodeHostKey(hostKey gossh.Signer, rec *raftstore.CARecord) (gossh.Signer, error) {
	hca, err := k.open(rec)
	if err != nil {
		return nil, err
	}
	cert, err := hca.SignHost(hostKey.PublicKey(), "rampart node "+k.n.id, k.n.sshHostNames(), hostCertValidity, k.n.now())
	if err != nil {
		return nil, err
	}
	return gossh.NewCertSigner(cert, hostKey)
}
