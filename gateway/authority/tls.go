package authority

import (
	"crypto"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rampart-ssh/rampart/gateway/ca"
)

// errNoClusterCA: the replica holds no cluster identity yet (before
// bootstrap has written it, or before this node has replayed it).
var errNoClusterCA = errors.New("the cluster CA is not in the replica yet")

// tlsCA loads the cluster TLS CA from the replica, unsealed with the KEK,
// issuing at the times now gives.
func (a *Authority) tlsCA(now func() time.Time) (*ca.TLSCA, error) {
	_, meta, err := a.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	if meta == nil || meta.TLSCACert == "" || len(meta.TLSCAKeySealed) == 0 {
		return nil, errNoClusterCA
	}
	return ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, a.kek, now)
}

// IssueTLS issues a cluster TLS certificate (api.RoleNode or api.RoleAgent)
// for id and pub with the cluster TLS CA from the replica, naming ips and
// dnsNames; validity 0 means two years. It returns the certificate as PEM.
// A refusal of the request itself (role, id, key) wraps ca.ErrCertRequest;
// any other error is the node's.
func (a *Authority) IssueTLS(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) (_ []byte, err error) {
	start := time.Now()
	defer func() { a.metrics.observe(kindTLS, start, err) }()
	tca, err := a.tlsCA(a.now)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	return tca.IssueCert(ca.TLSCertRequest{Role: role, ID: id, PublicKey: pub, IPs: ips, DNSNames: dnsNames, Validity: validity})
}
