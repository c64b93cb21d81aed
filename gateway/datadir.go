package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// dataDir knows where a node keeps its files. Everything in it is private to
// the node (mode 0700/0600).
type dataDir string

func (d dataDir) path(parts ...string) string {
	return filepath.Join(append([]string{string(d)}, parts...)...)
}

func (d dataDir) ensure() error {
	for _, p := range []string{d.path(), d.path("tls")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	return nil
}

// readFile returns a file's contents, or nil without error when it is absent.
func (d dataDir) readFile(name ...string) ([]byte, error) {
	b, err := os.ReadFile(d.path(name...))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// writeFile writes a private file atomically (temp file + rename).
func (d dataDir) writeFile(data []byte, name ...string) error {
	p := d.path(name...)
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return os.Rename(tmp.Name(), p)
}

func (d dataDir) exists(name ...string) bool {
	_, err := os.Stat(d.path(name...))
	return err == nil
}

// nodeID returns the configured id, else the stored one, else a new one that
// it stores.
func (d dataDir) nodeID(configured string) (string, error) {
	stored, err := d.readFile("node-id")
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(stored))
	switch {
	case configured != "" && s != "" && configured != s:
		return "", fmt.Errorf("node_id %q differs from the id %q stored in %s: a node's id cannot change", configured, s, d.path("node-id"))
	case configured != "":
		s = configured
	case s == "":
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		s = "node-" + hex.EncodeToString(b)
	}
	return s, d.writeFile([]byte(s+"\n"), "node-id")
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
