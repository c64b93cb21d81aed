package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// setupCommand is the command that sets ~/.ssh up again for cfg's cluster
// (its API address stands for the bastion; the stored pin is reused).
func setupCommand(cfg *Config) string { return "rampart setup " + cfg.API }

// setupDrift says how the cluster's setup now differs from the one setup
// wrote into ~/.ssh; "" when it does not. A host CA rotation shows here:
// known_hosts keeps trusting the old keys until setup runs again.
func setupDrift(written, now *api.ClientSetup) string {
	switch {
	case !sameSet(written.NodeHostCAKeys, now.NodeHostCAKeys) || !sameSet(written.HostCAKeys, now.HostCAKeys):
		return "the cluster's host CA keys changed (a host CA rotation)"
	case written.JumpHost != now.JumpHost || !sameSet(written.NodeNames, now.NodeNames) || !sameSet(written.HostPatterns, now.HostPatterns):
		return "the cluster's jump host, node names or host patterns changed"
	}
	return ""
}

// sameSet reports whether a and b hold the same lines, whatever the order
// and surrounding spaces.
func sameSet(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, 0, len(l))
		for _, s := range l {
			out = append(out, strings.TrimSpace(s))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// setupCurrent reads the cluster's setup now and compares it with the one
// written: the drift ("" for none), or why it could not compare.
func setupCurrent(cfg *Config) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now, err := fetchSetup(ctx, cfg.API, cfg.Pin)
	if err != nil {
		return "", err
	}
	return setupDrift(&cfg.Setup, now), nil
}

// checkSetupCurrent warns, after a sign-in, when the cluster's setup has
// changed since ~/.ssh was written, with the command that brings it up to
// date (which shows the changes and asks before writing them).
func (a *app) checkSetupCurrent(cfg *Config) {
	drift, err := setupCurrent(cfg)
	switch {
	case err != nil:
		fmt.Fprintf(a.err, "Could not compare ~/.ssh with the cluster's setup: %v\n", err)
	case drift != "":
		fmt.Fprintf(a.err, "Warning: %s since ~/.ssh was set up: run `%s` to trust what the cluster uses now.\n", drift, setupCommand(cfg))
	}
}
