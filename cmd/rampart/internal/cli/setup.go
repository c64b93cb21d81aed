package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/client/bastion"
	"github.com/rampart-ssh/rampart/client/sshsetup"
)

// defaultAPIPort is the nodes' HTTPS API port.
const defaultAPIPort = "8443"

func (a *app) setupCmd() *cobra.Command {
	var apiAddr, pin string
	var yes, remove bool
	c := &cobra.Command{
		Use:   "setup BASTION",
		Short: "Trust the cluster's host CAs and send its servers through the bastion in ~/.ssh",
		Long: `setup reads the cluster's host CA keys and names over HTTPS, trusting only the cluster CA
whose fingerprint you give (--fingerprint) or confirm, and writes:
  ~/.ssh/known_hosts            an @cert-authority block (no "unknown host" question, ever)
  ~/.ssh/config                 an Include of ~/.config/rampart/ssh_config, at the top
  ~/.config/rampart/ssh_config  ProxyJump through the bastion for the cluster's servers
It shows the changes first, changes nothing when all is set up, and keeps
everything else in your files. setup --remove takes it all out again.`,
		Args: func(c *cobra.Command, args []string) error {
			if remove {
				return cobra.NoArgs(c, args)
			}
			return cobra.ExactArgs(1)(c, args)
		},
		RunE: func(_ *cobra.Command, args []string) error {
			e, err := newEnv()
			if err != nil {
				return err
			}
			if remove {
				return a.removeSetup(e, yes)
			}
			return a.setup(e, args[0], apiAddr, pin, yes)
		},
	}
	c.Flags().StringVar(&pin, "fingerprint", "", "the cluster CA's fingerprint, sha256:<hex> (`cluster status` in the admin shell prints it as \"cluster CA pin\")")
	c.Flags().StringVar(&apiAddr, "api", "", "the cluster's HTTPS API (default https://BASTION:"+defaultAPIPort+")")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "write the changes without asking")
	c.Flags().BoolVar(&remove, "remove", false, "take out everything setup wrote, leaving your files as they were")
	return c
}

// apiURL is the API address for what the person typed: a URL as it is, a
// host (with or without the SSH port) on the API port.
func apiURL(bastionArg, apiFlag string) (string, error) {
	if apiFlag != "" {
		return apiFlag, nil
	}
	if strings.HasPrefix(bastionArg, "https://") {
		return bastionArg, nil
	}
	host := bastionArg
	if h, _, err := net.SplitHostPort(bastionArg); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return "", fmt.Errorf("bastion %q: give its host name, such as bastion.example.com", bastionArg)
	}
	return "https://" + net.JoinHostPort(host, defaultAPIPort), nil
}

func (a *app) setup(e *env, bastionArg, apiFlag, pin string, yes bool) error {
	apiAddr, err := apiURL(bastionArg, apiFlag)
	if err != nil {
		return err
	}
	old, err := e.load()
	if err != nil && !errors.Is(err, errNoSetup) {
		return err
	}
	if pin == "" && old != nil && old.API == apiAddr {
		pin = old.Pin
	}
	if pin == "" {
		if pin, err = a.confirmPin(apiAddr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := fetchSetup(ctx, apiAddr, pin)
	if err != nil {
		return err
	}
	cfg := &Config{API: apiAddr, Pin: pin, Setup: *cs}
	if old != nil && old.API == apiAddr {
		cfg.IdentityFile, cfg.UnixName, cfg.Servers = old.IdentityFile, old.UnixName, old.Servers
		a.refreshFromBastion(e, cfg)
	}
	changes, _, err := sshsetup.Plan(e.paths, e.desired(cfg))
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		fmt.Fprintf(a.out, "~/.ssh is set up for %s already; nothing to change.\n", apiAddr)
		return e.save(cfg)
	}
	a.showChanges(changes)
	if err := a.writeChanges(e, cfg, changes, yes); err != nil {
		return err
	}
	if err := e.save(cfg); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Set up ssh for %s (jump host %s).\n", apiAddr, cs.JumpHost)
	if cfg.UnixName == "" {
		fmt.Fprintln(a.out, "Next: rampart login")
	}
	return nil
}

// errChangedMeanwhile: a file changed between the diff shown and the write.
var errChangedMeanwhile = errors.New("your ssh files changed while the changes were shown: nothing was written; run rampart setup again to see the changes as they are now")

// writeChanges asks (unless yes) before making the changes shown, then
// plans them again from the files as they are now and writes only if that
// plan is the one shown: a file edited while the person read the diff
// would otherwise be overwritten with what was computed before the edit.
func (a *app) writeChanges(e *env, cfg *Config, shown []sshsetup.Change, yes bool) error {
	if !yes {
		if err := a.confirm("Write these changes?", "--yes"); err != nil {
			return err
		}
	}
	again, st, err := sshsetup.Plan(e.paths, e.desired(cfg))
	if err != nil {
		return err
	}
	if !sshsetup.SameChanges(shown, again) {
		return errChangedMeanwhile
	}
	if err := sshsetup.SaveState(e.paths, st); err != nil {
		return err
	}
	return sshsetup.Apply(again)
}

// showChanges prints each change as a unified diff.
func (a *app) showChanges(changes []sshsetup.Change) {
	for _, c := range changes {
		fmt.Fprint(a.out, c.Diff())
	}
}

// fetchSetup reads GET /v1/client/setup, trusting only the CA pin names.
func fetchSetup(ctx context.Context, apiAddr, pin string) (*api.ClientSetup, error) {
	cl, err := client.New([]string{apiAddr}, client.WithPin(pin))
	if err != nil {
		return nil, fmt.Errorf("--fingerprint %q is not a cluster CA fingerprint (sha256: and 64 hex digits): %w", pin, err)
	}
	defer cl.CloseIdleConnections()
	cs, err := cl.ClientSetup(ctx)
	switch {
	case errors.Is(err, client.ErrPinMismatch):
		return nil, fmt.Errorf("the server at %s does not present the cluster CA %s: check the fingerprint with your administrator, and do not go on if it was right (someone may be in the way)", apiAddr, pin)
	case err != nil:
		return nil, fmt.Errorf("cannot read the cluster's setup from %s (is it the cluster's API address? pass --api https://HOST:%s otherwise): %w", apiAddr, defaultAPIPort, err)
	}
	if len(cs.NodeHostCAKeys) == 0 || len(cs.HostCAKeys) == 0 || cs.JumpHost == "" {
		return nil, fmt.Errorf("the cluster at %s has no host CA yet: ask an administrator to finish setting it up", apiAddr)
	}
	if err := sshsetup.CheckClientSetup(cs); err != nil {
		return nil, fmt.Errorf("the cluster at %s sent a setup that is not safe to write (%w): nothing was changed; tell an administrator", apiAddr, err)
	}
	return cs, nil
}

// confirmPin shows the CA the server presents and asks the person to
// compare it with the one their administrator gave them.
func (a *app) confirmPin(apiAddr string) (string, error) {
	if !a.interactive {
		return "", errors.New("no --fingerprint and no terminal to confirm the cluster's on: pass --fingerprint sha256:... (an administrator reads it with `ssh admin@BASTION cluster status`, as \"cluster CA pin\")")
	}
	pin, err := presentedPin(apiAddr)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(a.err, "The cluster at %s presents the CA\n  %s\nCompare it with the cluster CA pin your administrator gave you.\n", apiAddr, pin)
	if err := a.confirm("Is it the same?", "--fingerprint"); err != nil {
		return "", err
	}
	return pin, nil
}

// presentedPin is the pin of the CA in the chain the server at apiAddr
// presents, trusted by nobody yet.
func presentedPin(apiAddr string) (string, error) {
	u, err := url.Parse(apiAddr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("API address %q: %w", apiAddr, err)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		// Nothing is trusted here: the pin is shown to a person, who compares it.
		Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return "", fmt.Errorf("cannot reach the cluster's API at %s: %w", apiAddr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	for _, c := range certs[min(1, len(certs)):] {
		if c.IsCA {
			return api.Pin(c), nil
		}
	}
	return "", errors.New("the server presents no CA certificate: it is not a node of a Rampart cluster")
}

// refreshFromBastion updates cfg's unix name and servers from the front
// door when its key is still bound; otherwise cfg keeps what it had.
func (a *app) refreshFromBastion(e *env, cfg *Config) {
	if cfg.IdentityFile == "" {
		return
	}
	key, err := e.boundKey(cfg)
	if err != nil {
		return
	}
	who, err := whoamiWith(cfg, key)
	if err != nil {
		return
	}
	if err := cfg.noteWhoami(who); err != nil {
		fmt.Fprintf(a.err, "Kept the servers of your last sign-in: %v\n", err)
	}
}

// removeSetup takes out what setup wrote.
func (a *app) removeSetup(e *env, yes bool) error {
	changes, err := sshsetup.PlanRemove(e.paths)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		a.showChanges(changes)
		if !yes {
			if err := a.confirm("Remove Rampart's setup?", "--yes"); err != nil {
				return err
			}
		}
		again, err := sshsetup.PlanRemove(e.paths)
		if err != nil {
			return err
		}
		if !sshsetup.SameChanges(changes, again) {
			return errChangedMeanwhile
		}
		if err := sshsetup.Apply(again); err != nil {
			return err
		}
	}
	for _, f := range []string{e.configPath(), e.agentPub()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	if err := sshsetup.RemoveState(e.paths); err != nil {
		return err
	}
	_ = os.Remove(e.paths.Dir) // only when empty
	fmt.Fprintln(a.out, "Removed Rampart's setup; your ssh files are as they were before it.")
	if _, err := os.Stat(e.dedicatedKey()); err == nil {
		fmt.Fprintf(a.out, "The key %s is kept; delete it (and %s.pub) if you no longer want it.\n", e.dedicatedKey(), e.dedicatedKey())
	}
	return nil
}

// errLoginFirst: no bound key is known.
var errLoginFirst = errors.New("you are not signed in: run `rampart login`")

// boundKey loads the key login bound.
func (e *env) boundKey(cfg *Config) (bastion.Key, error) {
	if cfg.IdentityFile == "" {
		return bastion.Key{}, errLoginFirst
	}
	if cfg.IdentityFile == e.agentPub() {
		return bastion.AgentKey(cfg.IdentityFile, os.Getenv("SSH_AUTH_SOCK"))
	}
	return bastion.LoadKey(cfg.IdentityFile, os.Getenv("SSH_AUTH_SOCK"))
}

func (e *env) agentPub() string     { return e.paths.Dir + "/agent_key.pub" }
func (e *env) dedicatedKey() string { return e.sshDir() + "/" + bastion.DedicatedKeyName }
