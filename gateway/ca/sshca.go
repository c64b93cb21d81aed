package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHCA is an SSH certificate authority: the cluster host CA or a project's
// user CA. Its private key exists in memory only; raft holds it sealed.
type SSHCA struct {
	ID     string
	Signer ssh.Signer
}

// NewSSHCAKey generates an ed25519 CA key and returns it with its sealed
// PKCS#8 form (sealed for purpose "ssh-ca:<id>") and authorized_keys line.
func NewSSHCAKey(id string, kek *KEK) (ca *SSHCA, sealed []byte, authorizedKey string, err error) {
	return NewSSHCAKeyAlg(id, SSHAlgED25519, kek)
}

// OpenSSHCA unseals a CA key stored in raft.
func OpenSSHCA(id string, sealed []byte, kek *KEK) (*SSHCA, error) {
	der, err := kek.Open(sealed, "ssh-ca:"+id)
	if err != nil {
		return nil, fmt.Errorf("unseal SSH CA %s: %w", id, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("SSH CA %s key: %w", id, err)
	}
	cs, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("SSH CA key cannot sign")
	}
	signer, err := caSigner(cs)
	if err != nil {
		return nil, fmt.Errorf("SSH CA %s: %w", id, err)
	}
	return &SSHCA{ID: id, Signer: signer}, nil
}

// SignHost certifies a host key for the given principals (the names and
// addresses clients type), valid from a minute ago for validity.
func (c *SSHCA) SignHost(hostKey ssh.PublicKey, keyID string, principals []string, validity time.Duration, now time.Time) (*ssh.Certificate, error) {
	if len(principals) == 0 {
		return nil, errors.New("a host certificate needs at least one principal")
	}
	serial, err := randomNonZero64()
	if err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{
		Key: hostKey, Serial: serial, CertType: ssh.HostCert, KeyId: keyID, ValidPrincipals: principals,
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(validity).Unix()),
	}
	signer, err := restrictRSA(c.Signer)
	if err != nil {
		return nil, err
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return nil, fmt.Errorf("sign host certificate: %w", err)
	}
	return cert, nil
}

func randomNonZero64() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

func authorizedLine(k ssh.PublicKey) string {
	line := ssh.MarshalAuthorizedKey(k)
	return string(line[:len(line)-1])
}
