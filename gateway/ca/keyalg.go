package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// SSH CA key algorithms NewSSHCAKeyAlg accepts. The empty string means
// SSHAlgED25519.
const (
	SSHAlgED25519   = "ed25519"
	SSHAlgECDSAP256 = "ecdsa-p256"
	SSHAlgRSA3072   = "rsa-3072"
)

// ErrUnknownKeyAlgorithm: NewSSHCAKeyAlg was asked for an algorithm it does
// not offer.
var ErrUnknownKeyAlgorithm = errors.New("unknown SSH CA key algorithm")

// NewSSHCAKeyAlg generates a CA key of algorithm alg (SSHAlgED25519, the
// default when alg is "", SSHAlgECDSAP256 or SSHAlgRSA3072) and returns it
// with its sealed PKCS#8 form (sealed for purpose "ssh-ca:<id>", exactly as
// NewSSHCAKey does, so OpenSSHCA opens either) and its authorized_keys line.
// An RSA CA signs with rsa-sha2-512 only. The algorithm to store in a
// raftstore.CARecord is ca.Signer.PublicKey().Type().
func NewSSHCAKeyAlg(id, alg string, kek *KEK) (ca *SSHCA, sealed []byte, authorizedKey string, err error) {
	var priv crypto.Signer
	switch alg {
	case "", SSHAlgED25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case SSHAlgECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case SSHAlgRSA3072:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, nil, "", fmt.Errorf("%w %q (want %s, %s or %s)", ErrUnknownKeyAlgorithm, alg, SSHAlgED25519, SSHAlgECDSAP256, SSHAlgRSA3072)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("generate SSH CA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, "", fmt.Errorf("encode SSH CA key: %w", err)
	}
	if sealed, err = kek.Seal(der, "ssh-ca:"+id); err != nil {
		return nil, nil, "", err
	}
	signer, err := caSigner(priv)
	if err != nil {
		return nil, nil, "", err
	}
	return &SSHCA{ID: id, Signer: signer}, sealed, authorizedLine(signer.PublicKey()), nil
}

// AuthorizedKey is the CA's public key as an authorized_keys line, as
// raftstore.CARecord.PublicKey holds it.
func (c *SSHCA) AuthorizedKey() string { return authorizedLine(c.Signer.PublicKey()) }

// caSigner wraps a CA private key as an ssh.Signer; an RSA key is restricted
// to rsa-sha2-512, so no path can make it sign with SHA-1.
func caSigner(priv crypto.Signer) (ssh.Signer, error) {
	s, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("SSH CA key: %w", err)
	}
	return restrictRSA(s)
}

// restrictRSA returns s unchanged unless it holds an RSA key, in which case
// it returns a signer whose first (and only) algorithm is rsa-sha2-512:
// Certificate.SignCert signs with a MultiAlgorithmSigner's first algorithm.
func restrictRSA(s ssh.Signer) (ssh.Signer, error) {
	if s.PublicKey().Type() != ssh.KeyAlgoRSA {
		return s, nil
	}
	if m, ok := s.(ssh.MultiAlgorithmSigner); ok {
		if algs := m.Algorithms(); len(algs) == 1 && algs[0] == ssh.KeyAlgoRSASHA512 {
			return s, nil
		}
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, errors.New("SSH CA: this RSA signer cannot choose rsa-sha2-512")
	}
	m, err := ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512})
	if err != nil {
		return nil, fmt.Errorf("SSH CA: %w", err)
	}
	return m, nil
}

// signatureFormat is the signature algorithm a certificate signed by a CA
// key of this type carries.
func signatureFormat(caKey ssh.PublicKey) string {
	if t := caKey.Type(); t != ssh.KeyAlgoRSA {
		return t
	}
	return ssh.KeyAlgoRSASHA512
}
