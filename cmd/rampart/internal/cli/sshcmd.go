package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"
)

func (a *app) sshCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ssh SERVER [-- COMMAND...]",
		Short: "Run OpenSSH to a server through the bastion, with your login on it",
		Long: `ssh runs: ssh -J LOGIN@JUMPHOST -l LOGIN SERVER [COMMAND...]
with LOGIN your unix name; ssh's exit code is rampart's (the remote command's).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			server, command := args[0], args[1:]
			if dash := c.ArgsLenAtDash(); dash > 1 || (dash < 0 && len(args) > 1) {
				return fmt.Errorf("give the remote command after --: rampart ssh %s -- COMMAND", server)
			}
			return a.execOpenSSH("ssh", func(login string) []string {
				return append([]string{"-l", login, server}, command...)
			})
		},
	}
}

func (a *app) scpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scp [SCP-OPTIONS] SOURCE... TARGET",
		Short: "Run OpenSSH's scp through the bastion, with your login (SERVER:PATH names a remote file)",
		Long: `scp runs: scp -J LOGIN@JUMPHOST -o User=LOGIN ARGS...
with LOGIN your unix name; its exit code is rampart's.`,
		Args:               cobra.MinimumNArgs(2),
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return a.execOpenSSH("scp", func(login string) []string {
				return append([]string{"-o", "User=" + login}, args...)
			})
		},
	}
}

// execOpenSSH replaces the CLI with OpenSSH's tool, given -J through the
// bastion and the arguments rest returns for the person's login.
func (a *app) execOpenSSH(tool string, rest func(login string) []string) error {
	e, err := newEnv()
	if err != nil {
		return err
	}
	cfg, err := e.load()
	if err != nil {
		return err
	}
	if cfg.UnixName == "" {
		return errors.New("rampart does not know your login on the servers yet: run `rampart login`")
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		return fmt.Errorf("OpenSSH's %s is not installed (on Debian or Ubuntu: apt install openssh-client)", tool)
	}
	argv := []string{tool}
	if e.foreignHome() {
		// ssh reads the account's ~/.ssh, not $HOME's.
		argv = append(argv, "-F", e.paths.SSHConfig)
	}
	argv = append(argv, "-J", cfg.UnixName+"@"+cfg.Setup.JumpHost)
	argv = append(argv, rest(cfg.UnixName)...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("run %s: %w", tool, err)
	}
	return nil
}
