package authority

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

const (
	// innerHostCertValidity: the inner server's host certificate only has to
	// outlive the handshake it is presented in.
	innerHostCertValidity = time.Hour
	// NodeHostCertValidity is the node's own host certificate's lifetime:
	// the node re-certifies its key at every start and on every rotation.
	NodeHostCertValidity = 365 * 24 * time.Hour
	// maxInnerCache bounds the inner signer cache; when full it starts over.
	maxInnerCache = 4096
	// hostCARetry is the pause after a failed re-signing of the front door's
	// host certificate.
	hostCARetry = 5 * time.Second
)

// errNoHostCA: the cluster has no active target host CA yet.
var errNoHostCA = errors.New("no active host CA")

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

// MintUser signs a per-hop certificate with the project's user CA, creating
// the CA on first use.
func (a *Authority) MintUser(ctx context.Context, req ca.UserCertRequest) (cert *gossh.Certificate, err error) {
	start := time.Now()
	defer func() { a.metrics.observe(kindUser, start, err) }()
	c, err := a.userCA(ctx, req.Project)
	if err != nil {
		return nil, err
	}
	return c.MintUser(req, a.now(), rand.Reader)
}

// InnerHostSigners returns the inner server's plain host key (stable per
// target, the same on every node) and a certificate for it naming what the
// person typed, the server's names and its address.
func (a *Authority) InnerHostSigners(srv *raftstore.Server, requested string) ([]gossh.Signer, error) {
	_, rec, err := a.store.State().ActiveCA(nil, raftstore.CAHost, "")
	if err != nil || rec == nil {
		return nil, fmt.Errorf("no active host CA: %v", err)
	}
	key := innerKey{serverID: srv.ID, serverIndex: srv.ModifyIndex, requested: requested, caID: rec.ID}
	now := a.now()
	a.mu.Lock()
	cached, ok := a.inner[key]
	a.mu.Unlock()
	if ok && now.Before(cached.renewAt) {
		return cached.signers, nil
	}
	signers, err := a.signInner(srv, requested, rec)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.inner) >= maxInnerCache {
		clear(a.inner)
	}
	a.inner[key] = innerSigners{signers: signers, renewAt: now.Add(innerHostCertValidity / 2)}
	a.mu.Unlock()
	return signers, nil
}

// signInner derives the inner host key and certifies it with the host CA.
func (a *Authority) signInner(srv *raftstore.Server, requested string, rec *raftstore.CARecord) (_ []gossh.Signer, err error) {
	start := time.Now()
	defer func() { a.metrics.observe(kindInnerHost, start, err) }()
	plain, err := a.kek.InnerHostKey(srv.ID)
	if err != nil {
		return nil, err
	}
	hostCA, err := a.open(rec)
	if err != nil {
		return nil, err
	}
	names := append([]string{requested, srv.Name}, srv.AltNames...)
	names = append(names, srv.Addr)
	cert, err := hostCA.IssueHost(ca.HostCertRequest{HostKey: plain.PublicKey(), KeyID: "rampart jump " + srv.Name, Names: names, Validity: innerHostCertValidity}, a.now(), nil)
	if err != nil {
		return nil, err
	}
	certSigner, err := gossh.NewCertSigner(cert, plain)
	if err != nil {
		return nil, err
	}
	return []gossh.Signer{plain, certSigner}, nil
}

// TargetHostCerts certifies each of a target's host keys for its name, alt
// names and access address with the active target host CA, valid for
// validity, and returns the certificates as authorized_keys lines and that
// CA's public key.
func (a *Authority) TargetHostCerts(srv *raftstore.Server, keys []gossh.PublicKey, validity time.Duration) (certs []string, caKey string, err error) {
	_, rec, err := a.store.State().ActiveCA(nil, raftstore.CAHost, "")
	if err != nil || rec == nil {
		return nil, "", errNoHostCA
	}
	hca, err := a.open(rec)
	if err != nil {
		return nil, "", err
	}
	names := append(append([]string{srv.Name}, srv.AltNames...), srv.Addr)
	for _, k := range keys {
		start := time.Now()
		cert, err := hca.IssueHost(ca.HostCertRequest{HostKey: k, KeyID: "rampart host " + srv.Name, Names: names, Validity: validity}, a.now(), nil)
		a.metrics.observe(kindTargetHost, start, err)
		if err != nil {
			return nil, "", err
		}
		certs = append(certs, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert))))
	}
	return certs, rec.PublicKey, nil
}

// HostCAKeys are the target host CA keys a target's certificate may be
// signed by (never the node host CA's: a target is not a node).
func (a *Authority) HostCAKeys() ([]gossh.PublicKey, error) {
	_, recs, err := a.store.State().CAsFor(nil, raftstore.CAHost, "")
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
// begin`) and seals it with the KEK: the shell gets the public half, the
// sealed key and its SSH key type, never the private key.
func (a *Authority) NewCAKey(id, alg string) (publicKey string, sealed []byte, keyAlg string, err error) {
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, a.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// HostSigners returns the node's plain host key and its host certificate,
// signed by the node host CA (created on first use, also on the first start
// of a cluster made before the CA was split). It makes sure the target host
// CA exists too, so that /v1/ca/host answers from the start.
func (a *Authority) HostSigners(ctx context.Context, hostKey gossh.Signer) ([]gossh.Signer, error) {
	if _, err := a.hostCA(ctx, raftstore.CAHost, HostCAID); err != nil {
		return nil, err
	}
	hca, err := a.hostCA(ctx, raftstore.CANodeHost, NodeHostCAID)
	if err != nil {
		return nil, err
	}
	certSigner, err := a.certifyNodeKey(hca, hostKey)
	if err != nil {
		return nil, err
	}
	return []gossh.Signer{hostKey, certSigner}, nil
}

// WatchHostCA keeps the front door's host certificate signed by the active
// node host CA: when a rotation promotes a new key (or rolls back), every node
// sees the change in its replica and re-signs its own host key at once, so
// clients that trust only the new key reach it without a restart. signedBy
// is the authorized_keys line of the CA that signed the certificate the
// front door started with. It runs until ctx ends.
func (a *Authority) WatchHostCA(ctx context.Context, hostKey gossh.Signer, signedBy string, set func(cert gossh.Signer)) {
	var index uint64
	for ctx.Err() == nil {
		var active *raftstore.CARecord
		idx, err := raftstore.BlockingQuery(ctx, a.store, index, 0, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			i, rec, err := st.ActiveCA(ws, raftstore.CANodeHost, "")
			active = rec
			return i, err
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil && active != nil && strings.TrimSpace(active.PublicKey) != strings.TrimSpace(signedBy) {
			var cert gossh.Signer
			if cert, err = a.signNodeHostKey(hostKey, active); err == nil {
				set(cert)
				signedBy = active.PublicKey
				a.logger.Info("re-signed the front door's host certificate", "ca", active.ID)
			}
		}
		if err != nil {
			a.logger.Error("node host CA watch", "err", err)
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

// signNodeHostKey certifies the node's own host key with the node host CA
// of rec.
func (a *Authority) signNodeHostKey(hostKey gossh.Signer, rec *raftstore.CARecord) (gossh.Signer, error) {
	hca, err := a.open(rec)
	if err != nil {
		return nil, err
	}
	return a.certifyNodeKey(hca, hostKey)
}

// certifyNodeKey certifies the node's own host key with hca for the names
// users type to reach the node.
func (a *Authority) certifyNodeKey(hca *ca.SSHCA, hostKey gossh.Signer) (gossh.Signer, error) {
	cert, err := hca.IssueHost(ca.HostCertRequest{HostKey: hostKey.PublicKey(), KeyID: "rampart node " + a.nodeID, Principals: a.hostNames, Validity: NodeHostCertValidity}, a.now(), nil)
	if err != nil {
		return nil, err
	}
	return gossh.NewCertSigner(cert, hostKey)
}
