package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// exitCode is an error that ends the CLI with a code and no message of its
// own (the message, if any, was printed already).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command line the CLI cannot read (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// app is one run of the CLI: its streams and its environment.
type app struct {
	in       io.Reader
	out, err io.Writer
	// interactive is set when stdin is a terminal a person can answer on.
	interactive bool
}

// Main runs the CLI with args and returns the process's exit code.
func Main(version string, args []string) int {
	a := &app{in: os.Stdin, out: os.Stdout, err: os.Stderr, interactive: term.IsTerminal(int(os.Stdin.Fd()))}
	root := a.root(version)
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(a.err, "rampart: %v\n", err)
	var usage usageError
	if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

func (a *app) root(version string) *cobra.Command {
	root := &cobra.Command{
		Use:   "rampart",
		Short: "The engineer's Rampart CLI: set up ssh, sign in, list and reach servers",
		Long: `rampart sets up your ssh for a Rampart cluster and signs you in ahead of your first ssh.

  rampart setup BASTION --fingerprint sha256:...   trust the cluster, write ~/.ssh
  rampart login                                     sign in in the browser, bind your key
  rampart servers                                   the servers you may reach
  rampart ssh SERVER [-- COMMAND]                   ssh to one of them through the bastion

Plain ssh works too once setup has run: ssh SERVER.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.out)
	root.SetErr(a.err)
	root.SetIn(a.in)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(a.setupCmd(), a.loginCmd(), a.serversCmd(), a.sshCmd(), a.scpCmd(), a.statusCmd(), a.recordingsCmd(), versionCmd(version))
	return root
}

func versionCmd(version string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "rampart", version) },
	}
}

// confirm asks a yes/no question on the terminal; without one it refuses,
// naming the flag that answers yes.
func (a *app) confirm(question, yesFlag string) error {
	if !a.interactive {
		return fmt.Errorf("no terminal to confirm on: pass %s to go ahead", yesFlag)
	}
	fmt.Fprintf(a.err, "%s [y/N] ", question)
	var answer string
	_, _ = fmt.Fscanln(a.in, &answer)
	if answer != "y" && answer != "Y" && answer != "yes" {
		return errors.New("nothing was changed")
	}
	return nil
}
