package ca

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"

	"github.com/rampart-ssh/rampart/client"
)

// The trust rules a client of the cluster applies (the CA pin, the role a
// cluster certificate names, the PEM forms) are defined once, in client,
// which the agent imports without linking the gateway. The names below are
// those definitions, for the gateway's own use.

// Roles a cluster certificate can carry, as a URI SAN urn:rampart:<role>:<id>.
const (
	RoleNode  = client.RoleNode
	RoleAgent = client.RoleAgent
)

// ErrPinMismatch is client.ErrPinMismatch.
var ErrPinMismatch = client.ErrPinMismatch

// Pin is client.Pin: "sha256:<hex>" of cert's SubjectPublicKeyInfo.
func Pin(cert *x509.Certificate) string { return client.Pin(cert) }

// Identity is client.Identity: the role and id a cluster certificate names.
func Identity(cert *x509.Certificate) (role, id string, ok bool) { return client.Identity(cert) }

// EncodeKeyPEM is client.EncodeKeyPEM (PKCS#8 PEM).
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) { return client.EncodeKeyPEM(key) }

// ParseCertPEM is client.ParseCertPEM.
func ParseCertPEM(data []byte) (*x509.Certificate, error) { return client.ParseCertPEM(data) }

// PinnedTLS is client.PinnedTLS.
//
// Deprecated: only the e2e tests still call it here; use client.PinnedTLS.
func PinnedTLS(pin string) *tls.Config { return client.PinnedTLS(pin) }
