package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/client/bastion"
	"github.com/rampart-ssh/rampart/client/sshsetup"
)

func (a *app) loginCmd() *cobra.Command {
	var keyPath string
	var noBrowser bool
	c := &cobra.Command{
		Use:   "login",
		Short: "Sign in in the browser now, so that your key is bound before your first ssh",
		Long: `login signs you in to the cluster with the key your ssh offers: ssh-agent's first key,
else ~/.ssh/id_rsa, id_ecdsa or id_ed25519 (without a passphrase), else a key of its own,
~/.ssh/rampart_ed25519, which it creates. When the key is not bound yet it opens the
sign-in page in your browser ($BROWSER, xdg-open or open), or prints the link and a
QR code, and returns once you have approved. The key is then bound for the cluster's
binding time (8 hours by default), and ~/.config/rampart/ssh_config makes ssh offer it.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			e, err := newEnv()
			if err != nil {
				return err
			}
			return a.login(e, keyPath, noBrowser)
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "sign in with this private key file")
	c.Flags().BoolVar(&noBrowser, "no-browser", false, "print the link and a QR code; do not open a browser")
	return c
}

func (a *app) login(e *env, keyPath string, noBrowser bool) error {
	cfg, err := e.load()
	if err != nil {
		return err
	}
	key, err := a.loginKey(e, cfg, keyPath)
	if err != nil {
		return err
	}
	d, err := dialer(cfg)
	if err != nil {
		return err
	}
	c, err := d.Connect(key.Signer)
	if errors.Is(err, bastion.ErrNotBound) {
		fmt.Fprintf(a.err, "Signing in with %s (%s).\n", key.Source, fingerprint(key))
		c, err = d.SignIn(key.Signer, func(url, text string) { a.showSignIn(url, text, noBrowser) })
	}
	if err != nil {
		return fmt.Errorf("sign-in failed: %w", err)
	}
	defer c.Close()
	who, err := bastion.Whoami(c)
	if err != nil {
		return err
	}
	if err := cfg.noteWhoami(who); err != nil {
		return err
	}
	cfg.IdentityFile = key.IdentityFile
	if err := e.save(cfg); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Signed in as %s (login on servers: %s); key %s bound until %s.\n", who.Login, who.UnixName, fingerprint(key), who.BindingExpires)
	if err := a.refreshIncluded(e, cfg); err != nil {
		return err
	}
	a.checkSetupCurrent(cfg)
	return nil
}

// loginKey is the key to sign in with: --key, else the one bound before,
// else the one ssh would offer (bastion.FindKey).
func (a *app) loginKey(e *env, cfg *Config, keyPath string) (bastion.Key, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if keyPath != "" {
		abs, err := filepath.Abs(keyPath)
		if err != nil {
			return bastion.Key{}, err
		}
		return bastion.LoadKey(abs, sock)
	}
	if cfg.IdentityFile != "" {
		if k, err := e.boundKey(cfg); err == nil {
			return k, nil
		}
	}
	k, err := bastion.FindKey(e.sshDir(), e.paths.Dir, sock)
	if err == nil && k.Created {
		fmt.Fprintf(a.err, "ssh had no key to offer: created %s (no passphrase) for Rampart.\n", k.IdentityFile)
	}
	return k, err
}

// refreshIncluded rewrites rampart's own ssh_config, and setup's block in
// known_hosts, with the login and servers just learnt: the target host CA
// vouches for the servers the person may reach, and those only. Anything
// else in the person's files is left to `rampart setup`, which asks.
func (a *app) refreshIncluded(e *env, cfg *Config) error {
	changes, _, err := sshsetup.Plan(e.paths, e.desired(cfg))
	if err != nil {
		return err
	}
	for _, c := range changes {
		if c.Path != e.paths.Included && !c.InBlock {
			fmt.Fprintf(a.out, "~/.ssh is not set up for this cluster as it is now: run `%s` to see the changes.\n", setupCommand(cfg))
			continue
		}
		if err := sshsetup.Apply([]sshsetup.Change{c}); err != nil {
			return err
		}
		switch c.Path {
		case e.paths.Included:
			fmt.Fprintf(a.out, "Updated %s: ssh offers this key, as %s, to the cluster's servers.\n", c.Path, cfg.UnixName)
		case e.paths.KnownHosts:
			fmt.Fprintf(a.out, "Updated rampart's block in %s: the cluster's host CA vouches for the servers you may reach (%d) and the published patterns, no other names.\n", c.Path, len(cfg.Servers))
		default:
			fmt.Fprintf(a.out, "Updated rampart's block in %s.\n", c.Path)
		}
	}
	return nil
}

// showSignIn tells the person how to approve: the front door's words (the
// link and the code), the browser opened on the link when there is one,
// else a QR code of it.
func (a *app) showSignIn(url, text string, noBrowser bool) {
	fmt.Fprintln(a.err, strings.ReplaceAll(text, "\r", ""))
	if !noBrowser && openBrowser(url) {
		fmt.Fprintln(a.err, "Opened the link in your browser.")
		return
	}
	if q, err := qrcode.New(url, qrcode.Low); err == nil {
		fmt.Fprintf(a.err, "Or scan it:\n%s", q.ToSmallString(true))
	}
}

// openBrowser starts $BROWSER (its first entry), else xdg-open or open,
// on url; it reports whether one started.
func openBrowser(url string) bool {
	var candidates []string
	if b := os.Getenv("BROWSER"); b != "" {
		candidates = append(candidates, strings.Split(b, ":")[0])
	} else if runtime.GOOS == "darwin" {
		candidates = append(candidates, "open")
	} else if os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" {
		candidates = append(candidates, "xdg-open")
	}
	for _, c := range candidates {
		path, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		cmd := exec.Command(path, url)
		if cmd.Start() == nil {
			go func() { _ = cmd.Wait() }()
			return true
		}
	}
	return false
}
