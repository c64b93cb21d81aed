// Command rampartd is a Rampart bastion node. It only parses flags and hands
// over to the gateway package.
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

	"github.com/rampart-ssh/rampart/gateway"
)

func main() {
	// rampartd restore --from FILE and rampartd recover prepare a data dir
	// (docs/operations.md) with the node's usual flags, then exit.
	args, sub := os.Args[1:], ""
	if len(args) > 0 && (args[0] == "restore" || args[0] == "recover") {
		sub, args = args[0], args[1:]
	}
	fs := pflag.NewFlagSet("rampartd", pflag.ContinueOnError)
	gateway.Flags(fs)
	from := ""
	if sub == "restore" {
		fs.StringVar(&from, "from", "", "the backup file to restore (written by cluster backup)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		// pflag prints nothing on ContinueOnError.
		fmt.Fprintf(os.Stderr, "rampartd: %v\nRun 'rampartd --help' for the flags.\n", err)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rampartd: unexpected argument %q: rampartd takes flags only (a configuration file is --config FILE), after restore or recover when it runs one of those\nRun 'rampartd --help' for the flags.\n", fs.Arg(0))
		os.Exit(2)
	}
	cfg, err := gateway.LoadConfig(fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rampartd:", err)
		os.Exit(2)
	}
	logger := newLogger(cfg.Log)
	// Libraries that log only through slog's default (zitadel's op) follow
	// the configured format and level too.
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch sub {
	case "restore":
		err = gateway.Restore(cfg, logger, os.Stdout, from)
	case "recover":
		err = gateway.Recover(cfg, logger, os.Stdout)
	default:
		err = gateway.Run(ctx, cfg, logger, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rampartd:", err)
		os.Exit(1)
	}
}

func newLogger(c gateway.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
