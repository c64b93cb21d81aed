package ca

import (
	"crypto"
	"crypto/x509"

	"github.com/rampart-ssh/rampart/api"
)

// The trust rules a certificate carries are defined in api. These three
// names remain only for gateway/recordings.go and its test, which are being
// moved; delete this file once they call api directly.

// RoleNode is api.RoleNode.
//
// Deprecated: use api.RoleNode.
const RoleNode = api.RoleNode

// Identity is api.Identity.
//
// Deprecated: use api.Identity.
func Identity(cert *x509.Certificate) (role, id string, ok bool) { return api.Identity(cert) }

// EncodeKeyPEM is api.EncodeKeyPEM.
//
// Deprecated: use api.EncodeKeyPEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) { return api.EncodeKeyPEM(key) }
