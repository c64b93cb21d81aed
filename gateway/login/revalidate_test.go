package login

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The revalidator runs on the shared in-memory store as on the node's.
var (
	_ RevalidateStore = (*raftstoretest.Store)(nil)
	_ RevalidateStore = (*raftstore.Store)(nil)
	_ Refresher       = (*Provider)(nil)
	_ Deactivator     = (*control.Service)(nil)
	_ Sealer          = (*ca.KEK)(nil)
)

// fakeClock is the revalidator's clock: Wait moves it forward at once and
// records what was waited.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Wait(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.waits = append(c.waits, d)
	return nil
}

// scriptedIdP answers refreshes from a per-person script (the last answer
// repeats) and records when each came.
type scriptedIdP struct {
	clock   *fakeClock
	mu      sync.Mutex
	answers map[string][]func(tok Secret) (*Refreshed, error)
	calls   []idpCall
}

type idpCall struct {
	user  string
	at    time.Time
	token string
}

func (f *scriptedIdP) Refresh(_ context.Context, tok Secret, subject string) (*Refreshed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, idpCall{subject, f.clock.Now(), tok.Reveal()})
	as := f.answers[subject]
	if len(as) == 0 {
		return &Refreshed{RefreshToken: tok}, nil
	}
	a := as[0]
	if len(as) > 1 {
		f.answers[subject] = as[1:]
	}
	return a(tok)
}

func (f *scriptedIdP) script(user string, as ...func(Secret) (*Refreshed, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[user] = as
}

func rotateTo(next string, id *Identity) func(Secret) (*Refreshed, error) {
	return func(Secret) (*Refreshed, error) { return &Refreshed{RefreshToken: Secret(next), Identity: id}, nil }
}

func fail(kind RefreshKind, reason string, retry time.Duration) func(Secret) (*Refreshed, error) {
	return func(Secret) (*Refreshed, error) {
		return nil, &RefreshError{Kind: kind, Reason: reason, RetryAfter: retry}
	}
}

type revalHarness struct {
	t     *testing.T
	store *raftstoretest.Store
	kek   *ca.KEK
	svc   *Service
	clock *fakeClock
	idp   *scriptedIdP
	r     *Revalidator
	logs  *bytes.Buffer
}

var revalStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const revalInterval = 100 * time.Second

func newRevalHarness(t *testing.T) *revalHarness {
	t.Helper()
	raw := make([]byte, ca.KEKSize)
	_, _ = rand.Read(raw)
	kek, err := ca.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := &revalHarness{t: t, store: raftstoretest.New(t), kek: kek, clock: &fakeClock{t: revalStart}, logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(h.logs, nil))
	h.svc = NewService(h.store, 8*time.Hour, logger)
	h.svc.SetClock(h.clock.Now)
	h.svc.SetRefreshTokens(kek, time.Hour)
	h.idp = &scriptedIdP{clock: h.clock, answers: map[string][]func(Secret) (*Refreshed, error){}}
	ctl := control.New(control.Deps{Store: h.store, Auditor: control.StoreAuditor{Store: h.store, Now: h.clock.Now}, Now: h.clock.Now, Logger: logger})
	h.r = NewRevalidator(RevalidatorConfig{Interval: revalInterval, Store: h.store, IdP: h.idp, Sealer: kek, Control: ctl, Users: h.svc,
		Now: h.clock.Now, Wait: h.clock.Wait, Logger: logger})
	return h
}

// signIn provisions a person from a sign-in that gave token, and binds a
// new key to them.
func (h *revalHarness) signIn(login, token string, groups ...string) (*raftstore.User, *Identity) {
	h.t.Helper()
	id := &Identity{Subject: "sub-" + login, Login: login, Groups: groups, RefreshToken: Secret(token)}
	u, err := h.svc.Provision(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return u, id
}

func (h *revalHarness) bind(u *raftstore.User) *raftstore.Binding {
	h.t.Helper()
	key := newKey(h.t)
	b, err := h.svc.Bind(context.Background(), u, key, BindInfo{SourceAddr: "192.0.2.1:5000"})
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *revalHarness) record(userID string) *raftstore.IdPSession {
	h.t.Helper()
	_, rec, err := h.store.State().IdPSessionByUser(nil, userID)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// storedToken opens the person's stored token.
func (h *revalHarness) storedToken(userID string) string {
	h.t.Helper()
	rec := h.record(userID)
	if rec == nil {
		h.t.Fatalf("%s has no IdP session", userID)
	}
	plain, err := h.kek.Open(rec.RefreshSealed, raftstore.RefreshPurpose(userID))
	if err != nil {
		h.t.Fatalf("open %s's token: %v", userID, err)
	}
	return string(plain)
}

// The token is kept only sealed, for its person alone; a refresh that
// rotates it replaces it; nothing prints it.
func TestRefreshTokenSealingAndRotation(t *testing.T) {
	h := newRevalHarness(t)
	alice, id := h.signIn("alice", "rt-alice-1", "eng")
	h.bind(alice)
	rec := h.record(alice.ID)
	if rec == nil || bytes.Contains(rec.RefreshSealed, []byte("rt-alice-1")) {
		t.Fatalf("stored record %+v holds the token in the clear", rec)
	}
	if _, err := h.kek.Open(rec.RefreshSealed, raftstore.RefreshPurpose("sub-bob")); err == nil {
		t.Fatal("alice's sealed token opens as bob's")
	}
	if got := h.storedToken(alice.ID); got != "rt-alice-1" {
		t.Fatalf("stored token %q", got)
	}
	if s := fmt.Sprintf("%v %+v %#v %s %q", id.RefreshToken, *id, id, id.RefreshToken, id.RefreshToken); strings.Contains(s, "rt-alice") {
		t.Fatalf("the token prints: %s", s)
	}

	h.idp.script(alice.ID, rotateTo("rt-alice-2", nil))
	h.r.pass(context.Background(), h.clock.Now())
	if got := h.storedToken(alice.ID); got != "rt-alice-2" {
		t.Fatalf("after a rotating refresh the stored token is %q", got)
	}
	if c := h.idp.calls; len(c) != 1 || c[0].token != "rt-alice-1" {
		t.Fatalf("IdP calls %+v", c)
	}
	// Without rotation the same token stays; the next pass uses the rotated one.
	h.r.pass(context.Background(), h.clock.Now())
	if c := h.idp.calls; len(c) != 2 || c[1].token != "rt-alice-2" || h.storedToken(alice.ID) != "rt-alice-2" {
		t.Fatalf("IdP calls %+v", c)
	}
	// A new sign-in replaces the token; a refresh that read the old record
	// does not overwrite it.
	h.signIn("alice", "rt-alice-3", "eng")
	if got := h.storedToken(alice.ID); got != "rt-alice-3" {
		t.Fatalf("after a new sign-in the stored token is %q", got)
	}
	if strings.Contains(h.logs.String(), "rt-alice") {
		t.Fatalf("a token reached the log:\n%s", h.logs)
	}
}

// The people due are spread evenly over the interval, and a follower
// refreshes nobody.
func TestRevalidationSpreadOverInterval(t *testing.T) {
	h := newRevalHarness(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		u, _ := h.signIn(n, "rt-"+n)
		h.bind(u)
	}
	h.store.SetLeader(false)
	h.r.pass(context.Background(), h.clock.Now())
	if len(h.idp.calls) != 0 {
		t.Fatalf("a follower refreshed: %+v", h.idp.calls)
	}
	h.store.SetLeader(true)
	start := h.clock.Now()
	h.r.pass(context.Background(), start)
	var got []time.Duration
	for _, c := range h.idp.calls {
		got = append(got, c.at.Sub(start))
	}
	want := []time.Duration{0, 25 * time.Second, 50 * time.Second, 75 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("refreshes at %v after the pass began, want %v", got, want)
	}
	if st := h.r.Stats(); st.Requests != 4 || st.Confirmed != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// A 429 backs off (doubling, or the IdP's Retry-After if longer), counts,
// and tries the same person again; a person the IdP keeps refusing to
// answer is recorded as unconfirmed and the pass moves on.
func TestRevalidationBacksOffOn429(t *testing.T) {
	h := newRevalHarness(t)
	a, _ := h.signIn("a", "rt-a")
	h.bind(a)
	b, _ := h.signIn("b", "rt-b")
	h.bind(b)
	limited := fail(RefreshRateLimited, "rate limited by the identity provider", 0)
	h.idp.script(a.ID, limited, fail(RefreshRateLimited, "rate limited by the identity provider", 5*time.Second), rotateTo("rt-a2", nil))
	h.idp.script(b.ID, limited)
	h.r.pass(context.Background(), h.clock.Now())

	if got := h.storedToken(a.ID); got != "rt-a2" {
		t.Fatalf("a's token after the backoff: %q", got)
	}
	// a: 1s, then Retry-After 5s (over the doubled 2s); b starts at its slot
	// (50s), with the backoff reset by a's answer: 1, 2, 4, 8, and its fifth
	// 429 gives up.
	want := []time.Duration{time.Second, 5 * time.Second, 50*time.Second - 6*time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if !slices.Equal(h.clock.waits, want) {
		t.Fatalf("waits %v, want %v", h.clock.waits, want)
	}
	if st := h.r.Stats(); st.RateLimited != 2+maxRateLimitedRuns || st.Requests != 3+maxRateLimitedRuns {
		t.Fatalf("stats %+v", st)
	}
	if rec := h.record(b.ID); rec.Failures != 1 || !strings.Contains(rec.LastFailure, "rate limited") {
		t.Fatalf("b's record %+v", rec)
	}
}

// Every kind of refusal deactivates the person as the IdP's, with the IdP's
// answer in the audit log, revokes their bindings and drops their token.
func TestRevalidationRefusalDeactivates(t *testing.T) {
	cases := []struct{ name, reason string }{
		{"ok/invalid-grant", "invalid_grant: refresh token revoked"},
		{"ok/account-inactive", "invalid_grant: user account is disabled"},
		{"ok/subject-mismatch", "the refreshed ID token names another subject"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newRevalHarness(t)
			bob, _ := h.signIn("bob", "rt-bob", "eng")
			key := h.bind(bob)
			h.idp.script(bob.ID, fail(RefreshRefused, tc.reason, 0))
			h.r.pass(context.Background(), h.clock.Now())

			st := h.store.State()
			_, u, _ := st.UserByID(nil, bob.ID)
			if u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
				t.Fatalf("bob after the refusal: %+v", u)
			}
			if _, b, _ := st.BindingByFingerprint(nil, key.Fingerprint); b != nil {
				t.Fatal("bob's binding survived")
			}
			if h.record(bob.ID) != nil {
				t.Fatal("bob's refresh token was kept")
			}
			_, evs, err := st.Audit(nil)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(evs, func(e *raftstore.AuditEvent) bool { return e.Type == control.EventUserDeactivate })
			if i < 0 || evs[i].Actor != RevalidationActor || evs[i].Fields["reason"] != "re-validation: "+tc.reason {
				t.Fatalf("audit: %+v", evs)
			}
			if st := h.r.Stats(); st.Refused != 1 {
				t.Fatalf("stats %+v", st)
			}
			if _, err := h.svc.Provision(context.Background(), &Identity{Subject: bob.ID, Login: "bob"}); !errors.Is(err, ErrDeactivatedInIdP) {
				t.Fatalf("bob signing in again: %v", err)
			}
		})
	}
}

// An IdP that cannot be asked deactivates nobody: the failure is recorded,
// the bound key keeps working up to the unverified bound, then needs a
// browser sign-in; a confirmation resets it.
func TestRevalidationUnreachableIdP(t *testing.T) {
	h := newRevalHarness(t)
	carol, _ := h.signIn("carol", "rt-carol", "eng")
	key := newKey(t)
	if _, err := h.svc.Bind(context.Background(), carol, key, BindInfo{}); err != nil {
		t.Fatal(err)
	}
	h.idp.script(carol.ID, fail(RefreshUnverified, "the identity provider cannot be reached", 0))
	for range 3 {
		h.r.pass(context.Background(), h.clock.Now())
		if err := h.clock.Wait(context.Background(), 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	rec := h.record(carol.ID)
	if rec == nil || rec.Failures != 3 || rec.LastFailure != "the identity provider cannot be reached" || !rec.ConfirmedAt.Equal(revalStart) {
		t.Fatalf("carol's record %+v", rec)
	}
	_, u, _ := h.store.State().UserByID(nil, carol.ID)
	if u.Status != raftstore.UserActive {
		t.Fatalf("carol was deactivated by an unreachable IdP: %+v", u)
	}
	// 30 minutes unverified: still in.
	if got, _, err := h.svc.BoundUser(key); err != nil || got == nil {
		t.Fatalf("carol's key after 30m unverified: %v %v", got, err)
	}
	// Past the hour: the key is not enough any more (the device flow runs).
	_ = h.clock.Wait(context.Background(), 31*time.Minute)
	if got, _, err := h.svc.BoundUser(key); err != nil || got != nil {
		t.Fatalf("carol's key after 61m unverified: %v %v, want a browser sign-in", got, err)
	}
	// The IdP answers again: confirmed, the key works, failures cleared.
	h.idp.script(carol.ID, rotateTo("rt-carol-2", nil))
	h.r.pass(context.Background(), h.clock.Now())
	if got, _, err := h.svc.BoundUser(key); err != nil || got == nil {
		t.Fatalf("carol's key after re-validation: %v %v", got, err)
	}
	if rec := h.record(carol.ID); rec.Failures != 0 {
		t.Fatalf("after confirmation: %+v", rec)
	}
	if st := h.r.Stats(); st.Unverified != 3 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A person's groups follow the refreshed ID token; people with no live
// binding or open session lose their stored token without an IdP request.
func TestRevalidationGroupsAndDrops(t *testing.T) {
	h := newRevalHarness(t)
	dana, _ := h.signIn("dana", "rt-dana", "eng", "ops")
	h.bind(dana)
	erin, _ := h.signIn("erin", "rt-erin", "eng") // signed in without a key
	h.idp.script(dana.ID, rotateTo("rt-dana", &Identity{Subject: dana.ID, Login: "dana", Groups: []string{"eng"}}))
	h.r.pass(context.Background(), h.clock.Now())
	_, u, _ := h.store.State().UserByID(nil, dana.ID)
	if !slices.Equal(u.Groups, []string{"eng"}) || u.UnixName != dana.UnixName || u.UID != dana.UID {
		t.Fatalf("dana after the IdP dropped ops: %+v", u)
	}
	if h.record(erin.ID) != nil || slices.ContainsFunc(h.idp.calls, func(c idpCall) bool { return c.user == erin.ID }) {
		t.Fatal("erin, with neither binding nor session, kept a token or was refreshed")
	}
	// Sessions count as need: one open session keeps the token.
	frank, _ := h.signIn("frank", "rt-frank")
	h.store.MustApply(t, &raftstore.SessionOpen{Session: raftstore.Session{ID: "s1", UserID: frank.ID, Login: "frank", ServerID: "i-1", Project: "web", Node: "n1", Start: revalStart}})
	h.r.pass(context.Background(), h.clock.Now())
	if h.record(frank.ID) == nil {
		t.Fatal("frank's token was dropped while his session is open")
	}
	if st := h.r.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Run makes passes one interval apart while leading and stops with ctx.
func TestRevalidatorRun(t *testing.T) {
	h := newRevalHarness(t)
	a, _ := h.signIn("a", "rt-a")
	h.bind(a)
	ctx, cancel := context.WithCancel(context.Background())
	h.r.cfg.Wait = func(ctx context.Context, d time.Duration) error {
		if len(h.idp.calls) >= 3 {
			cancel()
		}
		return h.clock.Wait(ctx, d)
	}
	h.r.Run(ctx)
	var at []time.Duration
	for _, c := range h.idp.calls {
		at = append(at, c.at.Sub(revalStart))
	}
	if !slices.Equal(at, []time.Duration{0, revalInterval, 2 * revalInterval}) {
		t.Fatalf("refreshes at %v", at)
	}
}
