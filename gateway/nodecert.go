package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rampart-ssh/rampart/gateway/ca"
)

const (
	// nodeCertCheckEvery bounds how long the renewer sleeps at a time, so a
	// suspended machine or a clock step is noticed.
	nodeCertCheckEvery = time.Hour
	// nodeCertRetryMax bounds the wait between failed renewals.
	nodeCertRetryMax = 5 * time.Minute
)

// nodeCertRenewer keeps the node's TLS certificate valid. When two thirds of
// its lifetime have passed, the node signs a new certificate for its own key
// and names with the cluster TLS CA, whose key every node holds in its
// replica (sealed under the key-encryption key), writes it to tls/node.crt
// and presents it from the next handshake on (ca.NodeTLS.SetCertificate):
// the API listener, raft and forwarding keep running. It needs no other
// node, so a node cut off from the cluster still renews.
type nodeCertRenewer struct {
	nodeID   string
	tls      *ca.NodeTLS
	dir      dataDir
	kek      *ca.KEK
	validity time.Duration
	// clusterCA returns the cluster CA's certificate and sealed key from
	// the replicated state (empty before bootstrap has written them).
	clusterCA func() (certPEM string, sealedKey []byte, err error)
	audit     func(typ string, fields map[string]string)
	logger    *slog.Logger
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time
	// obtained is when the node got its current certificate: a lifetime is
	// counted from there (NotBefore is backdated to absorb clock skew).
	obtained time.Time
}

// newNodeCertRenewer builds the renewer of the node's certificate.
func (n *Node) newNodeCertRenewer() *nodeCertRenewer {
	r := &nodeCertRenewer{nodeID: n.id, tls: n.tls, dir: n.dir, kek: n.kek, validity: n.nodeCertTTL(),
		clusterCA: func() (string, []byte, error) {
			_, meta, err := n.store.State().Meta(nil)
			if err != nil || meta == nil {
				return "", nil, errors.Join(errors.New("no cluster identity in the replica yet"), err)
			}
			return meta.TLSCACert, meta.TLSCAKeySealed, nil
		},
		audit:  func(typ string, fields map[string]string) { n.audit.Record(typ, "node:"+n.id, fields) },
		logger: n.logger, now: n.now, after: time.After,
	}
	r.obtained = r.tls.Certificate().NotBefore
	if fi, err := os.Stat(n.dir.path("tls", "node.crt")); err == nil && fi.ModTime().After(r.obtained) {
		r.obtained = fi.ModTime()
	}
	return r
}

// nodeCertTTL is how long node certificates are valid (cluster.node_cert_validity).
func (n *Node) nodeCertTTL() time.Duration {
	if v := n.cfg.Cluster.NodeCertValidity; v > 0 {
		return v
	}
	return 2 * 365 * 24 * time.Hour
}

// nodeCertWait is how long to wait before the next renewal attempt of a
// certificate received at obtained and valid until notAfter, after failures
// failed attempts: until two thirds of its lifetime have passed, then
// retrying from one second, doubling up to nodeCertRetryMax but never
// longer than a quarter of what is left. Zero means now.
func nodeCertWait(obtained, notAfter, now time.Time, failures int) time.Duration {
	if failures > 0 {
		d := time.Second << min(failures-1, 16)
		return max(min(d, nodeCertRetryMax, notAfter.Sub(now)/4), 100*time.Millisecond)
	}
	return max(ca.RenewAt(obtained, notAfter).Sub(now), 0)
}

// run renews the certificate whenever it is due, until ctx ends.
func (r *nodeCertRenewer) run(ctx context.Context) {
	failures := 0
	for {
		leaf := r.tls.Certificate()
		wait := nodeCertWait(r.obtained, leaf.NotAfter, r.now(), failures)
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.after(min(wait, nodeCertCheckEvery)):
				if failures == 0 {
					continue // look again: the time may have jumped
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := r.renewOnce(); err != nil {
			failures++
			r.logger.Warn("node certificate renewal failed; retrying", "expires", leaf.NotAfter.UTC(), "attempt", failures, "err", err)
			continue
		}
		failures = 0
	}
}

// renewOnce signs a new certificate for the node's key and names and makes
// it the one presented.
func (r *nodeCertRenewer) renewOnce() error {
	caPEM, sealed, err := r.clusterCA()
	if err != nil {
		return err
	}
	if caPEM == "" || len(sealed) == 0 {
		return errors.New("the cluster CA is not in the replica yet")
	}
	now := r.now()
	tca, err := ca.LoadTLSCA([]byte(caPEM), sealed, r.kek, func() time.Time { return now })
	if err != nil {
		return err
	}
	old := r.tls.Certificate()
	keyPEM, err := r.dir.readFile("tls", "node.key")
	if err != nil || keyPEM == nil {
		return errors.Join(errors.New("read tls/node.key"), err)
	}
	certPEM, err := tca.Issue(ca.RoleNode, r.nodeID, old.PublicKey, old.IPAddresses, old.DNSNames, r.validity)
	if err != nil {
		return err
	}
	// Checked (chain, role, node id, key) before it is written.
	if err := r.tls.SetCertificate(certPEM, keyPEM); err != nil {
		return fmt.Errorf("renewed node certificate: %w", err)
	}
	r.obtained = now
	if err := r.dir.writeFile(certPEM, "tls", "node.crt"); err != nil {
		// In use already; the next start would load the old one, which a
		// renewal at once replaces if it is due.
		r.logger.Error("could not store the renewed node certificate", "err", err)
	}
	leaf := r.tls.Certificate()
	r.audit("node.cert_renewed", map[string]string{"node": r.nodeID, "serial": leaf.SerialNumber.String(), "not_after": leaf.NotAfter.UTC().Format(time.RFC3339)})
	r.logger.Info("renewed the node certificate", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC(), "previous_not_after", old.NotAfter.UTC())
	return nil
}
