package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

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

func authorizedLine(k ssh.PublicKey) string {
	line := ssh.MarshalAuthorizedKey(k)
	return string(line[:len(line)-1])
}
