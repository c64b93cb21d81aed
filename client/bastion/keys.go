package bastion

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Key is the key the CLI signs in with, and the IdentityFile that makes
// ssh offer the same key.
type Key struct {
	Signer gossh.Signer
	// IdentityFile is the private key file, or for a key held by ssh-agent
	// a file with its public half (ssh then asks the agent to sign).
	IdentityFile string
	// Source says where the key came from, for people.
	Source string
	// Created is set when the CLI made the key just now.
	Created bool
}

// DefaultKeyNames are the keys OpenSSH offers by default, in its order,
// that the CLI can use without a passphrase.
var DefaultKeyNames = []string{"id_rsa", "id_ecdsa", "id_ed25519"}

// DedicatedKeyName is the key the CLI creates when ssh has none to offer.
const DedicatedKeyName = "rampart_ed25519"

// LoadKey reads a private key file; a key with a passphrase is used through
// ssh-agent when the agent at agentSock holds it.
func LoadKey(path, agentSock string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key %s: %w", path, err)
	}
	s, err := gossh.ParsePrivateKey(b)
	var pp *gossh.PassphraseMissingError
	switch {
	case errors.As(err, &pp) && agentSock != "":
		if as := agentSigner(agentSock, pp.PublicKey); as != nil {
			return Key{Signer: as, IdentityFile: path, Source: path + " (through ssh-agent)"}, nil
		}
		return Key{}, fmt.Errorf("key %s has a passphrase and ssh-agent does not hold it: run ssh-add %s first", path, path)
	case errors.As(err, &pp):
		return Key{}, fmt.Errorf("key %s has a passphrase: run ssh-agent and ssh-add %s first", path, path)
	case err != nil:
		return Key{}, fmt.Errorf("read key %s: %w", path, err)
	}
	return Key{Signer: s, IdentityFile: path, Source: path}, nil
}

// agentSigner is the agent's signer for pub, or nil.
func agentSigner(sock string, pub gossh.PublicKey) gossh.Signer {
	signers := agentSigners(sock)
	for _, s := range signers {
		if string(s.PublicKey().Marshal()) == string(pub.Marshal()) {
			return s
		}
	}
	return nil
}

// agentSigners are the keys ssh-agent at sock holds, in its order (nil when
// there is no agent). The connection stays open for the process's life.
func agentSigners(sock string) []gossh.Signer {
	if sock == "" {
		return nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil
	}
	return signers
}

// FindKey returns the key the person's ssh would offer first: ssh-agent's
// first key (its public half written to pubDir so that ssh_config can name
// it), else the first default key in sshDir without a passphrase; failing
// both, the dedicated key sshDir/rampart_ed25519, created if missing.
func FindKey(sshDir, pubDir, agentSock string) (Key, error) {
	if signers := agentSigners(agentSock); len(signers) > 0 {
		s := signers[0]
		pub := filepath.Join(pubDir, "agent_key.pub")
		if err := writeFile(pub, gossh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
			return Key{}, err
		}
		return Key{Signer: s, IdentityFile: pub, Source: "ssh-agent (" + gossh.FingerprintSHA256(s.PublicKey()) + ")"}, nil
	}
	for _, name := range append(DefaultKeyNames, DedicatedKeyName) {
		k, err := LoadKey(filepath.Join(sshDir, name), "")
		if err == nil {
			return k, nil
		}
	}
	return CreateKey(filepath.Join(sshDir, DedicatedKeyName))
}

// CreateKey makes a new ed25519 key at path (and path.pub), without a
// passphrase; it refuses to overwrite a file.
func CreateKey(path string) (Key, error) {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("key %s exists but cannot be used; move it away or pass --key", path)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "rampart")
	if err != nil {
		return Key{}, err
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, err
	}
	if err := writeFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return Key{}, err
	}
	if err := writeFile(path+".pub", gossh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return Key{}, err
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return Key{}, err
	}
	return Key{Signer: signer, IdentityFile: path, Source: path, Created: true}, nil
}

func writeFile(path string, b []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// AgentKey is the key whose public half is in pubFile, signed by ssh-agent
// at agentSock.
func AgentKey(pubFile, agentSock string) (Key, error) {
	b, err := os.ReadFile(pubFile)
	if err != nil {
		return Key{}, fmt.Errorf("read %s: %w", pubFile, err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		return Key{}, fmt.Errorf("read %s: %w", pubFile, err)
	}
	s := agentSigner(agentSock, pub)
	if s == nil {
		return Key{}, fmt.Errorf("ssh-agent does not hold the key you signed in with (%s): add it with ssh-add, or run rampart login again", gossh.FingerprintSHA256(pub))
	}
	return Key{Signer: s, IdentityFile: pubFile, Source: "ssh-agent (" + gossh.FingerprintSHA256(pub) + ")"}, nil
}
