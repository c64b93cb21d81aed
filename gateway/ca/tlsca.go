package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 2 * 365 * 24 * time.Hour
	// backdate absorbs clock skew between nodes.
	backdate = 5 * time.Minute
)

// TLSCA is the cluster's TLS certificate authority.
type TLSCA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM is Cert encoded as PEM.
	CertPEM []byte
	now     func() time.Time
}

// NewTLSCA creates a CA for clusterID (ECDSA P-256, which every TLS client
// including curl accepts).
func NewTLSCA(clusterID string, now func() time.Time) (*TLSCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate cluster CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Rampart cluster CA " + clusterID, Organization: []string{"rampart"}},
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create cluster CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &TLSCA{Cert: cert, Key: key, CertPEM: pemCert(der), now: now}, nil
}

// LoadTLSCA rebuilds the CA from its certificate and its sealed key.
func LoadTLSCA(certPEM []byte, sealedKey []byte, kek *KEK, now func() time.Time) (*TLSCA, error) {
	cert, err := api.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	der, err := kek.Open(sealedKey, "tls-ca")
	if err != nil {
		return nil, fmt.Errorf("unseal cluster CA key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("cluster CA key cannot sign")
	}
	return &TLSCA{Cert: cert, Key: signer, CertPEM: certPEM, now: now}, nil
}

// SealKey returns the CA's private key sealed under kek, for raft.
func (c *TLSCA) SealKey(kek *KEK) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("marshal cluster CA key: %w", err)
	}
	return kek.Seal(der, "tls-ca")
}

// Pin is the SHA-256 of the CA's SubjectPublicKeyInfo, as tokens carry it.
func (c *TLSCA) Pin() string { return api.Pin(c.Cert) }

// NewNodeKey generates a node's TLS key.
func NewNodeKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// requireRole returns a tls VerifyConnection hook that accepts only a peer
// whose verified certificate names role.
func requireRole(role string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		r, id, ok := api.Identity(cs.PeerCertificates[0])
		if !ok || r != role {
			return fmt.Errorf("peer certificate is not a rampart %s certificate (role %q, id %q)", role, r, id)
		}
		return nil
	}
}

// NodeTLS holds the TLS configurations of a node, built from its certificate
// and the cluster CA. Every configuration (and every Clone of one) presents
// the node's current certificate at each handshake: SetCertificate replaces
// it for the API listener, the raft transport and every node-to-node client
// at once, without a restart.
type NodeTLS struct {
	// Raft requires a node certificate from the cluster CA on both sides.
	RaftServer, RaftClient *tls.Config
	// API serves HTTPS with the node certificate; client certificates are
	// optional there and checked per endpoint (nodes, agents).
	API *tls.Config
	// Pool holds the cluster CA.
	Pool *x509.CertPool

	caCert *x509.Certificate
	id     string
	cert   atomic.Pointer[tls.Certificate]
}

// NewNodeTLS builds a node's TLS configurations.
func NewNodeTLS(caPEM, certPEM, keyPEM []byte) (*NodeTLS, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster CA certificate is not valid PEM")
	}
	caCert, err := api.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	t := &NodeTLS{Pool: pool, caCert: caCert}
	pair, err := t.nodePair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	_, t.id, _ = api.Identity(pair.Leaf)
	t.cert.Store(pair)
	base := &tls.Config{MinVersion: tls.VersionTLS13,
		GetCertificate:       func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cert.Load(), nil },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.cert.Load(), nil },
	}
	rs := base.Clone()
	rs.ClientAuth, rs.ClientCAs, rs.VerifyConnection = tls.RequireAndVerifyClientCert, pool, requireRole(api.RoleNode)
	rc := base.Clone()
	rc.RootCAs, rc.VerifyConnection = pool, requireRole(api.RoleNode)
	ac := base.Clone()
	ac.MinVersion = tls.VersionTLS12
	ac.ClientAuth, ac.ClientCAs = tls.VerifyClientCertIfGiven, pool
	t.RaftServer, t.RaftClient, t.API = rs, rc, ac
	return t, nil
}

// nodePair parses a node certificate and its key and checks that the
// cluster CA signed it for a rampart node.
func (t *NodeTLS) nodePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: leaf.NotBefore.Add(time.Second)}); err != nil {
		return nil, fmt.Errorf("node certificate is not signed by the cluster CA: %w", err)
	}
	if role, _, ok := api.Identity(leaf); !ok || role != api.RoleNode {
		return nil, errors.New("node certificate does not name a rampart node")
	}
	pair.Leaf = leaf
	// Send the CA along with the leaf: a client that has only the CA's pin
	// (a joining node, an enrolling agent) verifies the chain against it.
	pair.Certificate = append(pair.Certificate, t.caCert.Raw)
	return &pair, nil
}

// Certificate is the node certificate presented now.
func (t *NodeTLS) Certificate() *x509.Certificate { return t.cert.Load().Leaf }

// SetCertificate makes a renewed certificate of the same node the one every
// later handshake presents. Connections already open keep theirs.
func (t *NodeTLS) SetCertificate(certPEM, keyPEM []byte) error {
	pair, err := t.nodePair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	if _, id, _ := api.Identity(pair.Leaf); id != t.id {
		return fmt.Errorf("node certificate names node %q, not this node (%q)", id, t.id)
	}
	t.cert.Store(pair)
	return nil
}
