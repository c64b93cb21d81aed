package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/client/bastion"
	"github.com/rampart-ssh/rampart/client/sshsetup"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Whether the cluster answers, ~/.ssh is set up and your key is signed in (and until when)",
		Long:  "status checks the cluster's API, ~/.ssh and your key's binding; it exits 1 when one of them needs you, saying what to run.",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			e, err := newEnv()
			if err != nil {
				return err
			}
			cfg, err := e.load()
			if err != nil {
				return err
			}
			ok := a.statusCluster(cfg)
			if ok {
				ok = a.statusHostCAs(cfg)
			}
			ok = a.statusSSH(e, cfg) && ok
			ok = a.statusBinding(e, cfg) && ok
			if !ok {
				return exitCode(1)
			}
			return nil
		},
	}
}

func (a *app) statusCluster(cfg *Config) bool {
	cl, err := client.New([]string{cfg.API}, client.WithPin(cfg.Pin), client.WithTimeout(10*time.Second))
	if err == nil {
		defer cl.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cl.Health(ctx)
	}
	if err != nil {
		fmt.Fprintf(a.out, "cluster:  %s does not answer (%v); check your network, or ask an administrator\n", cfg.API, err)
		return false
	}
	fmt.Fprintf(a.out, "cluster:  %s answers; jump host %s\n", cfg.API, cfg.Setup.JumpHost)
	return true
}

// statusHostCAs compares the host CA keys (and names) ~/.ssh trusts with
// the cluster's now: after a host CA rotation, setup must run again.
func (a *app) statusHostCAs(cfg *Config) bool {
	drift, err := setupCurrent(cfg)
	switch {
	case err != nil:
		fmt.Fprintf(a.out, "host CAs: cannot compare with the cluster's: %v\n", err)
		return false
	case drift != "":
		fmt.Fprintf(a.out, "host CAs: %s since ~/.ssh was set up: run `%s`\n", drift, setupCommand(cfg))
		return false
	}
	fmt.Fprintln(a.out, "host CAs: ~/.ssh trusts the cluster's current host CAs")
	return true
}

func (a *app) statusSSH(e *env, cfg *Config) bool {
	changes, _, err := sshsetup.Plan(e.paths, e.desired(cfg))
	switch {
	case err != nil:
		fmt.Fprintf(a.out, "ssh:      %v\n", err)
		return false
	case len(changes) > 0:
		fmt.Fprintf(a.out, "ssh:      ~/.ssh is not set up as rampart setup last left it: run `%s` to see what changes\n", setupCommand(cfg))
		return false
	}
	fmt.Fprintf(a.out, "ssh:      ~/.ssh is set up (%s)\n", e.paths.Included)
	return true
}

func (a *app) statusBinding(e *env, cfg *Config) bool {
	key, err := e.boundKey(cfg)
	if err != nil {
		fmt.Fprintf(a.out, "sign-in:  %v\n", err)
		return false
	}
	who, err := whoamiWith(cfg, key)
	switch {
	case errors.Is(err, bastion.ErrNotBound):
		fmt.Fprintf(a.out, "sign-in:  key %s is not signed in (expired or revoked): run `rampart login`\n", fingerprint(key))
		return false
	case err != nil:
		fmt.Fprintf(a.out, "sign-in:  cannot ask the bastion: %v\n", err)
		return false
	}
	left := ""
	if t, err := time.Parse(time.RFC3339, who.BindingExpires); err == nil {
		left = fmt.Sprintf(" (%s from now)", time.Until(t).Round(time.Minute))
	}
	fmt.Fprintf(a.out, "sign-in:  %s, login %s on servers; key %s bound until %s%s\n", who.Login, who.UnixName, fingerprint(key), who.BindingExpires, left)
	return true
}
