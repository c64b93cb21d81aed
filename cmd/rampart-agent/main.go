// Command rampart-agent runs on every target server and keeps its accounts,
// groups, sudo rules and sshd trust in step with the cluster. It only parses
// flags and hands over to the agent package.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/rampart-ssh/rampart/agent"
	"github.com/rampart-ssh/rampart/agent/hostapply"
	"github.com/rampart-ssh/rampart/api"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("rampart-agent", api.Version)
		return
	}
	fs := pflag.NewFlagSet("rampart-agent", pflag.ContinueOnError)
	agent.Flags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		// pflag prints nothing on ContinueOnError.
		fmt.Fprintf(os.Stderr, "rampart-agent: %v\nRun 'rampart-agent --help' for the flags.\n", err)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rampart-agent: unexpected argument %q: rampart-agent takes flags only (and `rampart-agent version`)\nRun 'rampart-agent --help' for the flags.\n", fs.Arg(0))
		os.Exit(2)
	}
	// Golden images carry the marker so that no clone starts (and enrolls)
	// before its first boot removes it. Exit status 0: this is no failure,
	// and a supervisor must not restart the agent over it.
	if _, err := os.Stat(api.DisableAutostartFile); err == nil {
		fmt.Fprintf(os.Stderr, "rampart-agent: not starting: %s exists (autostart is disabled on this machine, as on a golden image); delete it to let the agent run\n", api.DisableAutostartFile)
		return
	}
	cfg, err := agent.LoadConfig(fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rampart-agent:", err)
		os.Exit(2)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	host, err := hostapply.New(cfg.HostConfig(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, "rampart-agent:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, cfg, host, logger); err != nil {
		if errors.Is(err, agent.ErrReenroll) {
			fmt.Fprintln(os.Stderr, "rampart-agent:", agent.ReenrollHint(err))
		} else {
			fmt.Fprintln(os.Stderr, "rampart-agent:", err)
		}
		os.Exit(1)
	}
}
