package api

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The wire-level trust rules of the cluster's certificates, defined once for
// the side that issues them (gateway/ca) and the side that checks them
// (client, the agent): the roles and the identity URN a certificate names,
// the pin format tokens carry, the PEM forms, and when to renew.

// Roles a cluster certificate can carry, as a URI SAN urn:rampart:<role>:<id>.
const (
	RoleNode  = "node"
	RoleAgent = "agent"
)

// IdentityURI is the URI SAN that names role and id in a cluster
// certificate: urn:rampart:<role>:<id>. Identity reads it back.
func IdentityURI(role, id string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "rampart:" + role + ":" + id}
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

// Pin returns "sha256:<hex>" of cert's SubjectPublicKeyInfo, as tokens
// carry it.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM reads a PKCS #8 private key as EncodeKeyPEM writes it.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return signer, nil
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
