package client

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles a cluster certificate can carry, as a URI SAN urn:rampart:<role>:<id>.
const (
	RoleNode  = "node"
	RoleAgent = "agent"
)

// ErrPinMismatch: the server's CA is not the one the token pins.
var ErrPinMismatch = errors.New("cluster CA does not match the pin in the token")

// Pin returns "sha256:<hex>" of cert's SubjectPublicKeyInfo, as tokens
// carry it.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Identity returns the role and id a cluster certificate names.
func Identity(cert *x509.Certificate) (role, id string, ok bool) {
	for _, u := range cert.URIs {
		if u.Scheme != "urn" {
			continue
		}
		parts := strings.SplitN(u.Opaque, ":", 3)
		if len(parts) == 3 && parts[0] == "rampart" && parts[1] != "" && parts[2] != "" {
			return parts[1], parts[2], true
		}
	}
	return "", "", false
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM parses the first certificate of a PEM block.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// RenewAt is when a certificate received at start and valid until end is
// renewed: once two thirds of its lifetime have passed, so that a third is
// left for retries. Every certificate Rampart renews (agent TLS, target host
// certificates, node TLS) follows this one rule. start is when the holder
// received it, not its backdated not-before; a start after end gives end.
func RenewAt(start, end time.Time) time.Time {
	if !start.Before(end) {
		return end
	}
	return start.Add(end.Sub(start) * 2 / 3)
}

// PinnedTLS returns a client TLS config that trusts a server only if its chain
// ends in a CA whose SubjectPublicKeyInfo matches pin, as a joining node or an
// enrolling agent does before it has the CA.
func PinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below, against the pin, instead of system roots.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("server certificate: %w", err)
				}
				certs = append(certs, c)
			}
			if len(certs) == 0 {
				return errors.New("server presented no certificate")
			}
			for _, c := range certs[1:] {
				if c.IsCA && Pin(c) == pin {
					pool := x509.NewCertPool()
					pool.AddCert(c)
					if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
						return fmt.Errorf("server certificate: %w", err)
					}
					// Only a node of the cluster may answer, never another
					// holder of a certificate from the same CA.
					if role, id, ok := Identity(certs[0]); !ok || role != RoleNode {
						return fmt.Errorf("server certificate names %s %q, not a node of the cluster", role, id)
					}
					return nil
				}
			}
			return ErrPinMismatch
		},
	}
}

// checkCAPin returns ErrPinMismatch unless caPEM is the CA that pin names:
// the CA an enrollment or join answer hands over must be the one the
// handshake was checked against.
func checkCAPin(caPEM, pin string) error {
	cert, err := ParseCertPEM([]byte(caPEM))
	if err != nil || Pin(cert) != pin {
		return ErrPinMismatch
	}
	return nil
}
