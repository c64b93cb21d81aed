package authority

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
)

const (
	// nodeCertCheckEvery bounds how long the renewer sleeps at a time, so a
	// suspended machine or a clock step is noticed.
	nodeCertCheckEvery = time.Hour
	// nodeCertRetryMax bounds the wait between failed renewals.
	nodeCertRetryMax = 5 * time.Minute
)

// NodeCertFiles is where the node keeps its TLS key and certificate (the
// data directory's tls/node.key and tls/node.crt).
type NodeCertFiles interface {
	// ReadKey returns the node's private key as PEM, nil if there is none.
	ReadKey() ([]byte, error)
	// WriteCert stores a renewed certificate for the next start.
	WriteCert(certPEM []byte) error
}

// NodeCertRenewer keeps the node's TLS certificate valid. When two thirds of
// its lifetime have passed, the node signs a new certificate for its own key
// and names with the cluster TLS CA, whose key every node holds in its
// replica (sealed under the key-encryption key), writes it to tls/node.crt
// and presents it from the next handshake on (ca.NodeTLS.SetCertificate):
// the API listener, raft and forwarding keep running. It needs no other
// node, so a node cut off from the cluster still renews.
type NodeCertRenewer struct {
	a        *Authority
	tls      *ca.NodeTLS
	files    NodeCertFiles
	validity time.Duration
	audit    func(typ string, fields map[string]string)
	logger   *slog.Logger
	after    func(time.Duration) <-chan time.Time
	// obtained is when the node got its current certificate: a lifetime is
	// counted from there (NotBefore is backdated to absorb clock skew).
	obtained time.Time
}

// NodeCertRenewer builds the renewer of the node's certificate, presented
// through tls and stored in files, renewed for validity. stored is when the
// certificate file was last written (zero if unknown): the certificate was
// obtained then or at its NotBefore, whichever is later. audit records each
// renewal.
func (a *Authority) NodeCertRenewer(tls *ca.NodeTLS, files NodeCertFiles, validity time.Duration, stored time.Time, audit func(typ string, fields map[string]string)) *NodeCertRenewer {
	r := &NodeCertRenewer{a: a, tls: tls, files: files, validity: validity, audit: audit, logger: a.logger, after: time.After}
	r.obtained = tls.Certificate().NotBefore
	if stored.After(r.obtained) {
		r.obtained = stored
	}
	return r
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
	return max(api.RenewAt(obtained, notAfter).Sub(now), 0)
}

// Run renews the certificate whenever it is due, until ctx ends.
func (r *NodeCertRenewer) Run(ctx context.Context) {
	failures := 0
	for {
		leaf := r.tls.Certificate()
		wait := nodeCertWait(r.obtained, leaf.NotAfter, r.a.now(), failures)
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
func (r *NodeCertRenewer) renewOnce() error {
	now := r.a.now()
	tca, err := r.a.tlsCA(func() time.Time { return now })
	if err != nil {
		return err
	}
	old := r.tls.Certificate()
	keyPEM, err := r.files.ReadKey()
	if err != nil || keyPEM == nil {
		return errors.Join(errors.New("read tls/node.key"), err)
	}
	nodeID := r.a.nodeID
	certPEM, err := tca.IssueCert(ca.TLSCertRequest{Role: api.RoleNode, ID: nodeID, PublicKey: old.PublicKey, IPs: old.IPAddresses, DNSNames: old.DNSNames, Validity: r.validity})
	if err != nil {
		return err
	}
	// Checked (chain, role, node id, key) before it is written.
	if err := r.tls.SetCertificate(certPEM, keyPEM); err != nil {
		return fmt.Errorf("renewed node certificate: %w", err)
	}
	r.obtained = now
	if err := r.files.WriteCert(certPEM); err != nil {
		// In use already; the next start would load the old one, which a
		// renewal at once replaces if it is due.
		r.logger.Error("could not store the renewed node certificate", "err", err)
	}
	leaf := r.tls.Certificate()
	r.audit(EventNodeCertRenew, map[string]string{"node": nodeID, "serial": leaf.SerialNumber.String(), "not_after": leaf.NotAfter.UTC().Format(time.RFC3339)})
	r.logger.Info("renewed the node certificate", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC(), "previous_not_after", old.NotAfter.UTC())
	return nil
}
