package login

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Re-validation with the identity provider. Every interval the raft leader
// (one node of the cluster) redeems the refresh token of each person who has
// a live binding or an open session, spread evenly over the interval:
//
//   - the IdP refuses (invalid_grant: the account is inactive, gone or its
//     grant revoked; or the ID token names another subject): the person is
//     deactivated as the IdP's (control.DeactivateFromIdP: bindings revoked,
//     sessions ended on every node, agents lock the account), audited with
//     the IdP's answer, and the token dropped;
//   - the IdP confirms: the rotated token replaces the stored one, and the
//     refreshed ID token's groups become the person's groups (a group gone
//     takes its grants, and the sessions they allowed, away);
//   - the IdP cannot be asked or its answer not verified: the failure is
//     recorded and nothing else changes; the person's bindings keep working
//     until the unverified bound (Service.SetRefreshTokens) runs out;
//   - 429: the pass backs off (doubling from a second, or the Retry-After
//     the IdP gave) and tries the same person again.
//
// People with neither a live binding nor an open session (a jump session, or
// a front-door connection signed in without a key) lose their stored token.
//
// Two rules keep a fault on either side from deactivating people wholesale
// (a lost rotated token after a timeout, a leader change, an issuer or
// client changed, an IdP that expires idle grants):
//
//   - an invalid_grant right after an unverified attempt for the same person
//     counts as unverified, not as a refusal: the attempt the answer of
//     which was lost may have rotated the token;
//   - the breaker: once a pass has refused more people than the refusal
//     limit (RevalidatorConfig.MaxRefusals), further refusals are held —
//     recorded as unverified failures, logged at error level and counted
//     (RevalidationStats.Held) — until a pass ends with no more refusals
//     than the limit. Held people's keys stop at the unverified bound; an
//     administrator decides about the rest.

// Re-validation intervals (oidc.revalidate_interval).
const (
	DefaultRevalidateInterval = 5 * time.Minute
	MinRevalidateInterval     = 30 * time.Second
)

// RevalidationActor is the actor of the audit events re-validation causes.
const RevalidationActor = "idp:revalidation"

// rate-limit backoff: first wait, and how many 429s in a row one person
// gets before the pass records the failure and moves on.
const (
	firstBackoff       = time.Second
	maxRateLimitedRuns = 5
)

// RevalidateStore is what re-validation needs of the replicated store.
type RevalidateStore interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	IsLeader() bool
}

// Refresher redeems refresh tokens (Provider implements it).
type Refresher interface {
	Refresh(ctx context.Context, token Secret, subject string) (*Refreshed, error)
}

// Deactivator disables a person as the IdP's (control.Service).
type Deactivator interface {
	DeactivateFromIdP(ctx context.Context, a control.Actor, id string, via raftstore.DisabledVia, why string) (int, error)
}

// Reconfirmer applies a refreshed identity to its person (Service).
type Reconfirmer interface {
	Reconfirm(ctx context.Context, userID string, id *Identity) (*raftstore.User, error)
}

// RevalidatorConfig is what a Revalidator is built from.
type RevalidatorConfig struct {
	// Interval between the starts of two passes (0: the default).
	Interval time.Duration
	Store    RevalidateStore
	IdP      Refresher
	Sealer   Sealer
	Control  Deactivator
	Users    Reconfirmer
	// MaxRefusals is how many people one pass may deactivate before the
	// breaker holds further refusals (0: the larger of
	// DefaultMaxRefusals and DefaultMaxRefusalShare of the people due).
	MaxRefusals int
	// Now is the clock; Wait waits d or until ctx ends (nil: timers).
	Now    func() time.Time
	Wait   func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// The breaker's default refusal limit per pass: the larger of
// DefaultMaxRefusals people and DefaultMaxRefusalShare percent of those due.
const (
	DefaultMaxRefusals     = 3
	DefaultMaxRefusalShare = 10
)

// RevalidationStats are the counters of re-validation since start, for the
// metrics: IdP token requests, and how each ended. Held counts the
// refusals the breaker held; BreakerOpen is whether it holds them now.
type RevalidationStats struct {
	Passes, Requests, Confirmed, Refused, Unverified, RateLimited, Dropped, Held uint64
	BreakerOpen                                                                  bool
}

// Revalidator re-validates people with the IdP while its node leads.
type Revalidator struct {
	cfg RevalidatorConfig
	log *slog.Logger

	passes, requests, confirmed, refused, unverified, rateLimited, dropped, held atomic.Uint64
	// open: the breaker holds refusals. Kept in memory by the leader: a
	// new leader starts closed.
	open atomic.Bool
	// Of the running pass (pass and what it calls run on one goroutine):
	// the refusal limit and the refusals seen, acted on or held.
	limit, refusals int
}

// NewRevalidator returns a Revalidator; Run starts it.
func NewRevalidator(cfg RevalidatorConfig) *Revalidator {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRevalidateInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Revalidator{cfg: cfg, log: cfg.Logger.With("component", "revalidation")}
}

// Stats reads the counters.
func (r *Revalidator) Stats() RevalidationStats {
	return RevalidationStats{
		Passes: r.passes.Load(), Requests: r.requests.Load(), Confirmed: r.confirmed.Load(), Refused: r.refused.Load(),
		Unverified: r.unverified.Load(), RateLimited: r.rateLimited.Load(), Dropped: r.dropped.Load(),
		Held: r.held.Load(), BreakerOpen: r.open.Load(),
	}
}

// personTimeout bounds the re-validation of one person (the IdP request,
// then the writes), so that a cluster without a leader or a silent IdP holds
// up a pass only so long.
const personTimeout = 30 * time.Second

// leaderPoll is how often a follower looks whether it leads now.
const leaderPoll = time.Second

// Run makes a pass every interval while this node leads, until ctx ends.
func (r *Revalidator) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if !r.cfg.Store.IsLeader() {
			if r.cfg.Wait(ctx, leaderPoll) != nil {
				return
			}
			continue
		}
		start := r.cfg.Now()
		r.pass(ctx, start)
		if d := start.Add(r.cfg.Interval).Sub(r.cfg.Now()); d > 0 {
			if r.cfg.Wait(ctx, d) != nil {
				return
			}
		}
	}
}

// pass drops the tokens nobody needs, then refreshes the others, the i-th
// of n at start + i·interval/n. It stops when the node stops leading.
func (r *Revalidator) pass(ctx context.Context, start time.Time) {
	r.passes.Add(1)
	st := r.cfg.Store.State()
	_, recs, err := st.IdPSessions(nil)
	if err != nil {
		r.log.Error("list IdP sessions", "err", err)
		return
	}
	var due []string
	for _, rec := range recs {
		if needed, why := r.needed(st, rec, start); !needed {
			r.drop(ctx, rec.UserID, why)
			continue
		}
		due = append(due, rec.UserID)
	}
	if len(due) == 0 {
		return
	}
	r.limit, r.refusals = r.cfg.MaxRefusals, 0
	if r.limit <= 0 {
		r.limit = max(DefaultMaxRefusals, len(due)*DefaultMaxRefusalShare/100)
	}
	gap := r.cfg.Interval / time.Duration(len(due))
	var backoff time.Duration
	for i, id := range due {
		if d := start.Add(time.Duration(i) * gap).Sub(r.cfg.Now()); d > 0 {
			if r.cfg.Wait(ctx, d) != nil {
				return
			}
		}
		if !r.cfg.Store.IsLeader() || ctx.Err() != nil {
			return
		}
		if backoff = r.person(ctx, id, backoff); backoff < 0 {
			return
		}
	}
	// Only a whole pass moves the breaker.
	r.closeBreaker(len(due))
}

// needed reports whether a person still needs re-validation: active, with a
// live binding, an open jump session, or an open front-door connection
// signed in without a key (a front door holds their record).
func (r *Revalidator) needed(st *raftstore.State, rec *raftstore.IdPSession, now time.Time) (bool, string) {
	userID := rec.UserID
	_, u, err := st.UserByID(nil, userID)
	if err != nil {
		return true, "" // keep it; look again next pass
	}
	if u == nil || u.Status != raftstore.UserActive {
		return false, "the person is not active"
	}
	if rec.HeldAt(now) {
		return true, ""
	}
	_, bs, err := st.BindingsByUser(nil, userID)
	if err != nil {
		return true, ""
	}
	for _, b := range bs {
		if now.Before(b.ExpiresAt) {
			return true, ""
		}
	}
	_, ss, err := st.SessionsByUser(nil, userID)
	if err != nil {
		return true, ""
	}
	for _, s := range ss {
		if s.Status == raftstore.SessionActive {
			return true, ""
		}
	}
	return false, "no live binding, open session or keyless connection"
}

// drop forgets a person's refresh token.
func (r *Revalidator) drop(ctx context.Context, userID, why string) {
	if _, err := r.cfg.Store.Apply(ctx, &raftstore.IdPSessionDelete{UserID: userID}); err != nil {
		r.log.Warn("drop a refresh token", "user_id", userID, "err", err)
		return
	}
	r.dropped.Add(1)
	r.log.Info("dropped a refresh token", "user_id", userID, "reason", why)
}

// person re-validates one person, backing off and retrying on 429. It
// returns the backoff the next person starts with (0 after an answer that
// was not a rate limit), or -1 when the pass must stop.
func (r *Revalidator) person(ctx context.Context, userID string, backoff time.Duration) time.Duration {
	for run := 1; ; run++ {
		pctx, cancel := context.WithTimeout(ctx, personTimeout)
		retry, err := r.once(pctx, userID)
		cancel()
		if err == nil || retry == 0 {
			return 0
		}
		r.rateLimited.Add(1)
		backoff = min(max(backoff*2, firstBackoff, retry), r.cfg.Interval)
		if run >= maxRateLimitedRuns {
			r.recordFailure(ctx, userID, 0, "rate limited by the identity provider")
			return backoff
		}
		r.log.Warn("identity provider rate limit; backing off", "user_id", userID, "backoff", backoff)
		if r.cfg.Wait(ctx, backoff) != nil || !r.cfg.Store.IsLeader() {
			return -1
		}
	}
}

// errRateLimited marks a 429 from once.
var errRateLimited = errors.New("rate limited")

// once makes one refresh of the person's token and acts on the answer. On a
// 429 it returns the IdP's Retry-After (at least a nanosecond) and
// errRateLimited.
func (r *Revalidator) once(ctx context.Context, userID string) (time.Duration, error) {
	st := r.cfg.Store.State()
	_, rec, err := st.IdPSessionByUser(nil, userID)
	if err != nil || rec == nil {
		return 0, err
	}
	if len(rec.RefreshSealed) == 0 {
		return 0, nil // a sign-in given no refresh token: nothing to redeem
	}
	plain, err := r.cfg.Sealer.Open(rec.RefreshSealed, raftstore.RefreshPurpose(userID))
	if err != nil {
		r.log.Error("stored refresh token cannot be opened", "user_id", userID, "err", err)
		r.unverified.Add(1)
		r.recordFailure(ctx, userID, rec.ModifyIndex, "the stored refresh token cannot be opened with this key-encryption key")
		return 0, nil
	}
	r.requests.Add(1)
	got, err := r.cfg.IdP.Refresh(ctx, Secret(plain), subjectOf(st, userID))
	var re *RefreshError
	switch {
	case err == nil:
		r.confirm(ctx, rec, got)
		return 0, nil
	case errors.As(err, &re) && re.Kind == RefreshRateLimited:
		return max(re.RetryAfter, 1), errRateLimited
	case errors.As(err, &re) && re.Kind == RefreshRefused && rec.Failures > 0 && !rec.LastRefused && invalidGrant(err):
		// The last attempt went unanswered: it may have rotated the token.
		r.unverified.Add(1)
		r.log.Warn("re-validation: the identity provider refused a token right after an unverified attempt; not taken as a refusal",
			"user_id", userID, "reason", re.Reason, "failures", rec.Failures)
		r.recordFailure(ctx, userID, rec.ModifyIndex, "refused right after an unverified attempt (the token may have been rotated unseen): "+re.Reason)
		return 0, nil
	case errors.As(err, &re) && re.Kind == RefreshRefused:
		if r.refusals++; r.open.Load() || r.refusals > r.limit {
			r.hold(ctx, userID, rec.ModifyIndex, re.Reason)
			return 0, nil
		}
		r.refuse(ctx, userID, re.Reason)
		return 0, nil
	case ctx.Err() != nil:
		return 0, ctx.Err()
	}
	reason := "the identity provider could not be asked"
	if re != nil {
		reason = re.Reason
	}
	r.unverified.Add(1)
	r.log.Warn("re-validation could not confirm a person; their bindings stay usable up to the unverified bound", "user_id", userID, "reason", reason)
	r.recordFailure(ctx, userID, rec.ModifyIndex, reason)
	return 0, nil
}

// subjectOf is the IdP subject of the person with userID: the subject a
// sign-in recorded (the id of a record SCIM made is SCIM's "scim-…", not
// the subject), else the id itself, which is the subject of a record a
// sign-in made.
func subjectOf(st *raftstore.State, userID string) string {
	if _, u, err := st.UserByID(nil, userID); err == nil && u != nil && u.Subject != "" {
		return u.Subject
	}
	return userID
}

// confirm applies a refresh that vouched for the person: their identity
// (groups) first, then the (rotated) token as confirmed now.
func (r *Revalidator) confirm(ctx context.Context, rec *raftstore.IdPSession, got *Refreshed) {
	userID := rec.UserID
	if got.Identity != nil {
		if _, err := r.cfg.Users.Reconfirm(ctx, userID, got.Identity); err != nil {
			if errors.Is(err, ErrUserDisabled) || errors.Is(err, raftstore.ErrNotFound) {
				r.drop(ctx, userID, "the person is not active")
				return
			}
			r.unverified.Add(1)
			r.log.Warn("re-validation could not apply the refreshed identity", "user_id", userID, "err", err)
			r.recordFailure(ctx, userID, rec.ModifyIndex, "the refreshed identity could not be applied")
			return
		}
	}
	sealed, err := r.cfg.Sealer.Seal([]byte(got.RefreshToken.Reveal()), raftstore.RefreshPurpose(userID))
	if err == nil {
		_, err = r.cfg.Store.Apply(ctx, &raftstore.IdPSessionPut{UserID: userID, RefreshSealed: sealed, ConfirmedAt: r.cfg.Now().UTC(), IfIndex: rec.ModifyIndex})
	}
	switch {
	case err == nil:
		r.confirmed.Add(1)
	case errors.Is(err, raftstore.ErrConflict):
		// A newer sign-in replaced the record meanwhile (or the person was
		// disabled): its token is the one to keep.
		r.confirmed.Add(1)
	default:
		r.log.Error("could not store the refreshed token", "user_id", userID, "err", err)
	}
}

// refuse deactivates a person the IdP no longer vouches for.
func (r *Revalidator) refuse(ctx context.Context, userID, answer string) {
	r.refused.Add(1)
	why := "re-validation: " + answer
	n, err := r.cfg.Control.DeactivateFromIdP(ctx, control.Actor{Name: RevalidationActor}, userID, raftstore.ViaRevalidation, why)
	if err != nil {
		// Kept, to try again next pass.
		r.log.Error("re-validation: the IdP refused a person, but deactivating them failed", "user_id", userID, "reason", answer, "err", err)
		return
	}
	r.log.Info("re-validation: the identity provider refused a person; deactivated", "user_id", userID, "reason", answer, "bindings_revoked", n)
	r.drop(ctx, userID, "refused by the identity provider")
}

// hold records a refusal the breaker keeps from deactivating the person.
func (r *Revalidator) hold(ctx context.Context, userID string, index uint64, answer string) {
	r.held.Add(1)
	if !r.open.Swap(true) {
		r.log.Error("re-validation breaker open: too many people refused in one pass; further refusals are held, not acted on, until a pass refuses no more than the limit. Check the identity provider and the oidc settings; disable the people truly gone with `users disable`",
			"limit", r.limit)
	}
	r.log.Error("re-validation: refusal held by the breaker", "user_id", userID, "reason", answer)
	if _, err := r.cfg.Store.Apply(ctx, &raftstore.IdPSessionFailure{UserID: userID, Reason: "refused, held by the breaker (too many refusals in one pass): " + answer,
		IfIndex: index, Refused: true, Now: r.cfg.Now().UTC()}); err != nil {
		r.log.Warn("record a held refusal", "user_id", userID, "err", err)
	}
}

// closeBreaker ends a pass of due people: the breaker opens when more than
// the limit were refused, and closes after a pass with no more than that.
func (r *Revalidator) closeBreaker(due int) {
	over := r.refusals > r.limit
	if was := r.open.Swap(over); was && !over {
		r.log.Info("re-validation breaker closed: a pass refused no more than the limit", "refused", r.refusals, "limit", r.limit, "due", due)
	}
}

// invalidGrant reports whether a refresh failed with the IdP's invalid_grant.
func invalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// recordFailure notes an unconfirmed refresh on the record read at index
// (0: whatever record is there).
func (r *Revalidator) recordFailure(ctx context.Context, userID string, index uint64, reason string) {
	if _, err := r.cfg.Store.Apply(ctx, &raftstore.IdPSessionFailure{UserID: userID, Reason: reason, IfIndex: index, Now: r.cfg.Now().UTC()}); err != nil {
		r.log.Warn("record a re-validation failure", "user_id", userID, "err", err)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
