package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/rampart-ssh/rampart/api"
)

// ErrPinMismatch: the server's CA is not the one the token pins.
var ErrPinMismatch = errors.New("cluster CA does not match the pin in the token")

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
				if c.IsCA && api.Pin(c) == pin {
					pool := x509.NewCertPool()
					pool.AddCert(c)
					if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
						return fmt.Errorf("server certificate: %w", err)
					}
					// Only a node of the cluster may answer, never another
					// holder of a certificate from the same CA.
					if role, id, ok := api.Identity(certs[0]); !ok || role != api.RoleNode {
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
	cert, err := api.ParseCertPEM([]byte(caPEM))
	if err != nil || api.Pin(cert) != pin {
		return ErrPinMismatch
	}
	return nil
}
