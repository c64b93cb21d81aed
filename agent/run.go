package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"time"

	"github.com/rampart-ssh/rampart/agent/events"
	"github.com/rampart-ssh/rampart/agent/hostapply"
	"github.com/rampart-ssh/rampart/api"
)

// Applier makes the server match a desired state (hostapply.Host does).
type Applier interface {
	Apply(ctx context.Context, d hostapply.Desired) (hostapply.Report, error)
}

// reconcileEvery re-applies the last state even when nothing changed, so
// that drift on the server (a deleted sudoers file, an edited account) is
// repaired without waiting for a change in the cluster.
const reconcileEvery = 5 * time.Minute

// Run enrolls if needed, then pulls and applies until ctx ends. It returns
// ErrReenroll (wrapped) when the cluster no longer accepts the credential.
func Run(ctx context.Context, cfg *Config, applier Applier, logger *slog.Logger) error {
	id, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return err
	}
	if id == nil {
		if id, err = Enroll(ctx, cfg, logger); err != nil {
			return err
		}
	}
	if len(cfg.Cluster) > 0 {
		id.Cluster = dedup(append(append([]string(nil), cfg.Cluster...), id.Cluster...))
	}
	puller, err := NewPuller(cfg.DataDir, id, cfg.PollWait, logger)
	if err != nil {
		return err
	}
	// The certificate is renewed beside the pull loop (renew.go); a renewal
	// that fails for good ends ctx with its error as the cause.
	ctx, stopRenewal, err := startRenewal(ctx, puller, cfg.DataDir, logger)
	if err != nil {
		return err
	}
	defer stopRenewal()
	// sshd's logins are reported beside the pull loop (agent/events).
	logins, err := startLoginEvents(ctx, cfg, id, puller, logger)
	if err != nil {
		return err
	}
	defer logins.Close()
	var index uint64
	var lastState *api.AgentState
	lastApply := time.Time{}
	for {
		// A blocking pull returns the same index when its wait runs out with
		// nothing new; the state is then applied again only every
		// reconcileEvery, to repair drift.
		st, err := puller.Next(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return stopCause(ctx)
			}
			return err
		}
		// The cluster answers a wait that ran out with its newest index and
		// the same state: nothing to apply until the drift repair is due.
		unchanged := st.Index == index || lastState != nil && sameState(st, lastState)
		index = st.Index
		if unchanged && time.Since(lastApply) < reconcileEvery {
			continue
		}
		lastState = st
		desired := desiredFrom(st, id)
		if cfg.DryRun {
			logger.Info("dry run: would apply", "index", st.Index, "users", len(desired.Users), "groups", len(desired.Groups), "sudo", len(desired.Sudo))
			lastApply = time.Now()
			continue
		}
		rep, err := applier.Apply(ctx, desired)
		lastApply = time.Now()
		if err != nil {
			logger.Error("apply failed", "index", st.Index, "err", err)
			continue
		}
		for _, c := range rep.Changes {
			logger.Info("changed", "what", c.String())
		}
		for _, p := range rep.Problems {
			logger.Warn("refused or failed", "problem", p.Error())
		}
		logger.Info("applied", "index", st.Index, "changes", len(rep.Changes), "problems", len(rep.Problems))
	}
}

// ReenrollHint is what an operator is told when the credential is refused.
func ReenrollHint(err error) string {
	return fmt.Sprintf("%v: unless the cluster removed it, an administrator deletes this server first (servers delete NAME: "+
		"a server enrolls once); then put a new enrollment token in the token file, delete the data dir's identity.json, and start the agent again", err)
}

// startLoginEvents starts following sshd's log and delivering its login
// events, over the pull loop's credential (renewals included). login_log off
// starts nothing.
func startLoginEvents(ctx context.Context, cfg *Config, id *Identity, p *Puller, logger *slog.Logger) (*events.Service, error) {
	tlsCfg, err := clientTLS(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	tlsCfg.Certificates, tlsCfg.GetClientCertificate = nil, p.cred.clientCertificate
	spoolDir := cfg.EventsSpoolDir
	if spoolDir == "" {
		spoolDir = filepath.Join(cfg.DataDir, "events")
	}
	poster := events.NewHTTPPoster(tlsCfg, id.Cluster, id.MachineID)
	poster.RetireConnectionsOn(p.cred.generation)
	return events.Start(ctx, events.Config{LoginLog: cfg.LoginLog, SpoolDir: spoolDir, Poster: poster, Logger: logger})
}

// sameState reports whether two states of the server hold the same content,
// whatever their indexes.
func sameState(a, b *api.AgentState) bool {
	x, y := *a, *b
	x.Index, y.Index = 0, 0
	return reflect.DeepEqual(&x, &y)
}
