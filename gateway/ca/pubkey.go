package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// ParsePublicKeyPEM parses the public key a node or an agent sends to be
// certified: exactly one PEM "PUBLIC KEY" block holding a PKIX public key.
// Its errors are fit to show the sender; they name the key by the request
// field that carries it everywhere, public_key.
func ParsePublicKeyPEM(text string) (crypto.PublicKey, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public_key is not a PEM PUBLIC KEY")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("public_key holds more than one PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("public_key is not a PKIX public key")
	}
	return pub, nil
}
