package cli

import (
	"net"
	"os/user"
	"slices"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client/bastion"
)

// dialer reaches the cluster's front door named by cfg.
func dialer(cfg *Config) (bastion.Dialer, error) {
	cas, err := bastion.ParseKeys(cfg.Setup.NodeHostCAKeys)
	if err != nil {
		return bastion.Dialer{}, err
	}
	addr := cfg.Setup.JumpHost
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	return bastion.Dialer{Addr: addr, User: bastionUser(cfg), NodeHostCAs: cas}, nil
}

// bastionUser is the user name on the bastion leg: it only selects a mode,
// and "admin" would ask for the admin shell.
func bastionUser(cfg *Config) string {
	if cfg.UnixName != "" {
		return cfg.UnixName
	}
	if u, err := user.Current(); err == nil && u.Username != "" && u.Username != "admin" {
		return u.Username
	}
	return "rampart"
}

// whoamiWith signs in with key alone and asks the front door who the
// person is (bastion.ErrNotBound when the key is not bound).
func whoamiWith(cfg *Config, key bastion.Key) (*api.Whoami, error) {
	d, err := dialer(cfg)
	if err != nil {
		return nil, err
	}
	c, err := d.Connect(key.Signer)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return bastion.Whoami(c)
}

// noteWhoami keeps the unix name and server names the front door gave.
func (cfg *Config) noteWhoami(w *api.Whoami) {
	cfg.UnixName = w.UnixName
	cfg.Servers = cfg.Servers[:0]
	for _, s := range w.Servers {
		cfg.Servers = append(cfg.Servers, s.Name)
	}
	slices.Sort(cfg.Servers)
	cfg.Servers = slices.Compact(cfg.Servers)
}

// fingerprint of a key, as ssh prints it.
func fingerprint(k bastion.Key) string { return gossh.FingerprintSHA256(k.Signer.PublicKey()) }
