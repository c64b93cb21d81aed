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

// retryFirst and retryMax bound how soon a state that did not settle (the
// applier failed, or withheld someone's certificate access) is applied
// again: at once after retryFirst, doubling up to retryMax. A person's
// first jump waits for the agent (jump.agent_wait, 15 s by default), so a
// passing failure (sshd -T refused once, a locked account database) must
// be retried well within it, not at the next change or reconcileEvery.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// settled says whether a state applied with rep counts as applied (its index
// is reported to the cluster, which the jump waits for). A person refused on
// their own (a Problem) does not hold the state back; access withheld from
// people whom sshd could not be shown to restrict does: their first login
// must not be let through as if the server were ready, and the state is
// applied again soon (retrySchedule).
func settled(rep hostapply.Report) bool { return len(rep.Withheld) == 0 }

// retrySchedule is when an unsettled state is applied again; the zero
// value has nothing to retry.
type retrySchedule struct {
	at   time.Time
	wait time.Duration
}

// failed schedules the next try after now, each one twice as far off.
func (r *retrySchedule) failed(now time.Time) time.Duration {
	r.wait = min(max(2*r.wait, retryFirst), retryMax)
	r.at = now.Add(r.wait)
	return r.wait
}

// settle clears the schedule.
func (r *retrySchedule) settle() { *r = retrySchedule{} }

// due says whether a try is scheduled at or before now.
func (r *retrySchedule) due(now time.Time) bool { return !r.at.IsZero() && !now.Before(r.at) }

// pullDeadline is the earlier of the two times a pull must stop waiting
// (zero: neither is set).
func pullDeadline(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

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
	// The configuration's addresses first, then the cluster's own list as
	// the last state response gave it (the token's before the first).
	puller, err := newPuller(cfg.DataDir, id, cfg.Cluster, cfg.PollWait, logger)
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
	// Host certificates are renewed by the pull loop itself, so that they
	// are applied (and sshd reloaded) by the one goroutine that applies.
	hostCerts := newHostCertRenewer(puller, cfg.DataDir, logger)
	var index uint64
	var lastState *api.AgentState
	lastApply := time.Time{}
	var retry retrySchedule
	for {
		// A blocking pull returns the same index when its wait runs out with
		// nothing new; the state is then applied again only every
		// reconcileEvery, to repair drift. A pull is cut short when the host
		// certificates fall due, or a state that did not settle is due again.
		pullCtx, cancel := ctx, context.CancelFunc(func() {})
		if lastState != nil {
			if at := pullDeadline(hostCerts.deadline(lastState.HostCAKey), retry.at); !at.IsZero() {
				pullCtx, cancel = context.WithDeadline(ctx, at)
			}
		}
		st, err := puller.Next(pullCtx, index)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return stopCause(ctx)
			}
			if pullCtx.Err() == nil {
				return err
			}
			st = lastState // the host certificates or a retry are due
		}
		renewed := hostCerts.maybeRenew(ctx, st.HostCAKey)
		// The cluster answers a wait that ran out with its newest index and
		// the same state: nothing to apply until the drift repair is due.
		// The applied index reported stays the one applied: reporting every
		// newer index would cost a raft write per agent per wait, and the
		// jump waits only for indexes at which this server's state changed.
		unchanged := st.Index == index || lastState != nil && sameState(st, lastState)
		index = st.Index
		if unchanged && !renewed && !retry.due(time.Now()) && time.Since(lastApply) < reconcileEvery {
			continue
		}
		lastState = st
		desired := desiredFrom(st, id)
		if cfg.DryRun {
			// Nothing will ever be applied: the jump must not wait for it.
			logger.Info("dry run: would apply", "index", st.Index, "users", len(desired.Users), "groups", len(desired.Groups), "sudo", len(desired.Sudo))
			lastApply = time.Now()
			puller.Applied(st.Index)
			continue
		}
		rep, err := applier.Apply(ctx, desired)
		lastApply = time.Now()
		if err != nil {
			logger.Error("apply failed", "index", st.Index, "err", err, "retry_in", retry.failed(lastApply))
			continue
		}
		// Reported on the next poll, which follows at once. A person the
		// applier refused (a Problem) is reported too: the jump then dials
		// and the target's refusal is the answer.
		if settled(rep) {
			retry.settle()
			puller.Applied(st.Index)
		} else {
			logger.Warn("certificate access withheld; state not reported as applied", "index", st.Index, "users", len(rep.Withheld), "retry_in", retry.failed(lastApply))
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
	// A client of its own, with a request timeout of its own, following the
	// nodes the puller learns of.
	poster, err := clusterClient(cfg.DataDir, id, p.cred, p.Addrs, 30*time.Second)
	if err != nil {
		return nil, err
	}
	spoolDir := cfg.EventsSpoolDir
	if spoolDir == "" {
		spoolDir = filepath.Join(cfg.DataDir, "events")
	}
	return events.Start(ctx, events.Config{LoginLog: cfg.LoginLog, SpoolDir: spoolDir, Poster: poster, Logger: logger})
}

// sameState reports whether two states of the server hold the same content,
// whatever their indexes and the cluster's addresses (which the puller
// follows; they change nothing on the server).
func sameState(a, b *api.AgentState) bool {
	x, y := *a, *b
	x.Index, y.Index = 0, 0
	x.Cluster, y.Cluster = nil, nil
	return reflect.DeepEqual(&x, &y)
}
