package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KEKSize is the length of a key-encryption key: 32 bytes for AES-256-GCM.
const KEKSize = 32

// sealVersion is the first byte of every sealed blob.
const sealVersion = 1

// kekIDLen is how many bytes of the KEK's fingerprint a sealed blob carries,
// so that opening it with the wrong KEK gives a clear error.
const kekIDLen = 8

var (
	// ErrWrongKEK: the blob was sealed under another key-encryption key.
	ErrWrongKEK = errors.New("sealed under a different key-encryption key")
	// ErrSealCorrupt: the blob is damaged or was tampered with.
	ErrSealCorrupt = errors.New("sealed key is corrupt or was tampered with")
)

// KEK is a key-encryption key. Private keys stored in raft are sealed under
// it; every node of a cluster needs the same KEK, supplied from a file or the
// environment, and it is never written to raft or logged.
type KEK struct {
	aead cipher.AEAD
	id   [kekIDLen]byte
	// raw is kept only to derive other keys from (derive.go).
	raw []byte
}

// NewKEK wraps 32 raw bytes.
func NewKEK(raw []byte) (*KEK, error) {
	if len(raw) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	k := &KEK{aead: aead, raw: append([]byte(nil), raw...)}
	sum := sha256.Sum256(append([]byte("rampart-kek-id\x00"), raw...))
	copy(k.id[:], sum[:])
	return k, nil
}

// ParseKEK reads a KEK written as base64 (standard or URL alphabet, padding
// optional), as `openssl rand -base64 32` prints it.
func ParseKEK(text string) (*KEK, error) {
	s := strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil {
			return NewKEK(raw)
		}
	}
	return nil, errors.New("key-encryption key is not base64 (make one with: openssl rand -base64 32)")
}

// ReadPrivateFile reads a file that holds a secret (what names it in
// errors, "key-encryption key file"), refusing one that its group or others
// may read or write (mode & 0o077): the rule for every secret a node reads
// from disk.
func ReadPrivateFile(path, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by others (mode %o): chmod 600 it", what, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// LoadKEKFile reads a KEK file, refusing one that others can read.
func LoadKEKFile(path string) (*KEK, error) {
	text, err := ReadPrivateFile(path, "key-encryption key file")
	if err != nil {
		return nil, err
	}
	k, err := ParseKEK(string(text))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file %s: %w", path, err)
	}
	return k, nil
}

// GenerateKEKFile writes a fresh random KEK to path (mode 0600) and returns it.
// It refuses to overwrite an existing file.
func GenerateKEKFile(path string, rnd io.Reader) (*KEK, error) {
	raw := make([]byte, KEKSize)
	if _, err := io.ReadFull(rnd, raw); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write key-encryption key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		return nil, fmt.Errorf("write key-encryption key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write key-encryption key: %w", err)
	}
	return NewKEK(raw)
}

// Seal encrypts plaintext, binding it to purpose (e.g. "tls-ca" or a CA
// record id) so a sealed blob cannot be swapped into another slot.
func (k *KEK) Seal(plaintext []byte, purpose string) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, 0, 1+kekIDLen+len(nonce)+len(plaintext)+k.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, k.id[:]...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(purpose)), nil
}

// Open decrypts a blob sealed for purpose.
func (k *KEK) Open(sealed []byte, purpose string) ([]byte, error) {
	head := 1 + kekIDLen + k.aead.NonceSize()
	if len(sealed) < head+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrSealCorrupt
	}
	if !bytes.Equal(sealed[1:1+kekIDLen], k.id[:]) {
		return nil, ErrWrongKEK
	}
	pt, err := k.aead.Open(nil, sealed[1+kekIDLen:head], sealed[head:], []byte(purpose))
	if err != nil {
		return nil, ErrSealCorrupt
	}
	return pt, nil
}
