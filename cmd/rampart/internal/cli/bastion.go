package cli

import (
	"fmt"
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

// noteWhoami keeps the unix name and server names the front door gave,
// once each passes its rule: they are written into ~/.ssh, where a name
// holding a newline would add lines of its own (a ProxyCommand). Anything
// else leaves cfg as it was.
func (cfg *Config) noteWhoami(w *api.Whoami) error {
	if err := api.ValidUnixName(w.UnixName); err != nil {
		return fmt.Errorf("the bastion sent a unix name that is not safe to write into ~/.ssh: %w", err)
	}
	servers := []string{}
	for _, s := range w.Servers {
		if !api.ValidServerName(s.Name) {
			return fmt.Errorf("the bastion sent a server name that is not safe to write into ~/.ssh: %q", s.Name)
		}
		servers = append(servers, s.Name)
	}
	slices.Sort(servers)
	cfg.UnixName, cfg.Servers = w.UnixName, slices.Compact(servers)
	return nil
}

// fingerprint of a key, as ssh prints it.
func fingerprint(k bastion.Key) string { return gossh.FingerprintSHA256(k.Signer.PublicKey()) }
