package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client/sshsetup"
)

// Config is what the CLI keeps in ~/.config/rampart/config.json: the
// cluster setup found, and what login learnt. None of it is a secret.
type Config struct {
	// API is the cluster's API address, Pin its CA's pin (sha256:<hex>).
	API string `json:"api"`
	Pin string `json:"pin"`
	// Setup is the cluster's answer to GET /v1/client/setup.
	Setup api.ClientSetup `json:"setup"`
	// IdentityFile is the key login bound (the file ssh offers).
	IdentityFile string `json:"identity_file,omitempty"`
	// UnixName and Servers are what the front door said at the last
	// login or setup with a bound key.
	UnixName string   `json:"unix_name,omitempty"`
	Servers  []string `json:"servers,omitempty"`
}

// errNoSetup: the CLI has no config yet.
var errNoSetup = errors.New("rampart is not set up on this account: run `rampart setup BASTION --fingerprint sha256:...` first (an administrator reads the fingerprint with `ssh admin@BASTION cluster status`, as \"cluster CA pin\")")

// env is where the CLI runs: the home directory ($HOME) and the paths under it.
type env struct {
	home  string
	paths sshsetup.Paths
}

func newEnv() (*env, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no home directory: set $HOME: %w", err)
	}
	return &env{home: home, paths: sshsetup.PathsFor(home)}, nil
}

func (e *env) configPath() string { return filepath.Join(e.paths.Dir, "config.json") }
func (e *env) sshDir() string     { return filepath.Join(e.home, ".ssh") }

// load reads the CLI's config; errNoSetup when there is none.
func (e *env) load() (*Config, error) {
	b, err := os.ReadFile(e.configPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoSetup
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.configPath(), err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s is damaged (%w): run rampart setup again", e.configPath(), err)
	}
	return &c, nil
}

// save writes the CLI's config, unless it holds that already.
func (e *env) save(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if old, err := os.ReadFile(e.configPath()); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return sshsetup.Apply([]sshsetup.Change{{Path: e.configPath(), New: b, Mode: 0o600}})
}

// desired is what ~/.ssh should hold for c.
func (e *env) desired(c *Config) sshsetup.Desired {
	return sshsetup.Desired{
		Cluster: c.API, JumpHost: c.Setup.JumpHost, NodeNames: c.Setup.NodeNames,
		NodeHostCAKeys: c.Setup.NodeHostCAKeys, HostCAKeys: c.Setup.HostCAKeys,
		Servers: c.Servers, HostPatterns: c.Setup.HostPatterns,
		UnixName: c.UnixName, IdentityFile: c.IdentityFile, KnownHostsFile: e.knownHostsOverride(),
	}
}

// knownHostsOverride is ~/.ssh/known_hosts under $HOME when $HOME is not
// the account's home: OpenSSH finds its files under the account's home,
// whatever $HOME says, so the written config names the file itself.
func (e *env) knownHostsOverride() string {
	if e.foreignHome() {
		return e.paths.KnownHosts
	}
	return ""
}

// foreignHome reports whether $HOME is not the account's home directory.
func (e *env) foreignHome() bool {
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		return false
	}
	a, _ := filepath.EvalSymlinks(u.HomeDir)
	b, _ := filepath.EvalSymlinks(e.home)
	return a != b
}
