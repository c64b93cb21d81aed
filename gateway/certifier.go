package gateway

// The certificates enrollment and join hand out (enroll.Certifier), issued
// with this node's keyring until gateway/authority takes them over.

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/enroll"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

var _ enroll.Certifier = (*keyring)(nil)

// TargetHostCerts certifies each host key for the server's names and address
// with the active target host CA, and returns that CA's key.
func (k *keyring) TargetHostCerts(srv *raftstore.Server, keys []gossh.PublicKey, validity time.Duration) ([]string, string, error) {
	_, rec, err := k.n.store.State().ActiveCA(nil, raftstore.CAHost, "")
	if err != nil || rec == nil {
		return nil, "", errors.New("no active host CA")
	}
	hca, err := k.open(rec)
	if err != nil {
		return nil, "", err
	}
	names := append(append([]string{srv.Name}, srv.AltNames...), srv.Addr)
	var out []string
	for _, key := range keys {
		cert, err := hca.SignHostForNames(key, "rampart host "+srv.Name, names, validity, k.n.now())
		if err != nil {
			return nil, "", err
		}
		out = append(out, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert))))
	}
	return out, rec.PublicKey, nil
}

// IssueTLS issues a cluster TLS certificate with the cluster CA, unsealed
// from the replicated state with the node's KEK. A key or id the CA
// refuses to certify is the requester's mistake: a 400 saying why.
func (k *keyring) IssueTLS(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) ([]byte, error) {
	_, meta, err := k.n.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	tca, err := ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, k.n.kek, k.n.now)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	certPEM, err := tca.Issue(role, id, pub, ips, dnsNames, validity)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	return certPEM, nil
}

// EnsureUserCA creates the project's user CA unless it has one.
func (k *keyring) EnsureUserCA(ctx context.Context, project string) error {
	_, err := k.userCA(ctx, project)
	return err
}
