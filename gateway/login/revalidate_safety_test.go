package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Regression tests of the security review of re-validation (December
// 2026): each case below deactivated, or failed to deactivate, someone.

// A person whose record SCIM made and a sign-in adopted (id "scim-…") is
// confirmed by an honest IdP: the refresh is checked against their subject,
// not the record's id, and the refreshed identity lands on that record.
func TestRevalidationConfirmsAdoptedSCIMPerson(t *testing.T) {
	const scimID, sub = "scim-0123456789abcdef0123456789abcdef", "00u-dave"
	var idp *hostileIdP
	idp = newHostileIdP(t, func(*hostileIdP) (int, map[string]any) {
		code, body := tokenReply(idp.sign(t, idp.key, idp.claims(func(c map[string]any) {
			c["sub"], c["preferred_username"], c["email"], c["groups"] = sub, "dave", "dave@example.com", []string{"ops"}
		})))
		body["refresh_token"] = "rt-dave-2"
		return code, body
	})
	h := newRevalHarness(t)
	h.r.cfg.IdP = NewProvider(OIDCConfig{Issuer: idp.srv.URL, ClientID: "rampart", OfflineAccess: OfflineOn}, slog.New(slog.DiscardHandler))
	h.store.MustApply(t, &raftstore.UserSCIMPut{User: raftstore.User{ID: scimID, Login: "dave", UnixName: "dave", ExternalID: sub}, Now: revalStart})
	dave, err := h.svc.Provision(context.Background(), &Identity{Subject: sub, Login: "dave", Email: "dave@example.com", Groups: []string{"eng"}, RefreshToken: "rt-dave-1"})
	if err != nil || dave.ID != scimID {
		t.Fatalf("sign-in did not adopt SCIM's record: %+v %v", dave, err)
	}
	h.bind(dave)

	h.r.pass(context.Background(), h.clock.Now())

	_, u, _ := h.store.State().UserByID(nil, scimID)
	if u.Status != raftstore.UserActive || u.DisabledByIdP {
		t.Fatalf("an honest IdP's confirmation deactivated the adopted person: %+v (stats %+v)", u, h.r.Stats())
	}
	if !slices.Equal(u.GroupsFromToken(), []string{"ops"}) {
		t.Fatalf("the refreshed groups did not reach the adopted record: %q", u.GroupsFromToken())
	}
	if _, other, _ := h.store.State().UserByID(nil, sub); other != nil {
		t.Fatalf("re-validation made a second record for the subject: %+v", other)
	}
	if got := h.storedToken(scimID); got != "rt-dave-2" {
		t.Fatalf("stored token %q, want the rotated one", got)
	}
	if st := h.r.Stats(); st.Confirmed != 1 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// refusedGrant is the IdP's invalid_grant as Provider.Refresh reports it.
func refusedGrant(Secret) (*Refreshed, error) {
	return nil, &RefreshError{Kind: RefreshRefused, Reason: "invalid_grant: token is not active",
		err: &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "token is not active"}}
}

// statusOf is the person's status and whether the IdP disabled them.
func (h *revalHarness) statusOf(id string) (raftstore.UserStatus, bool) {
	h.t.Helper()
	_, u, err := h.store.State().UserByID(nil, id)
	if err != nil || u == nil {
		h.t.Fatalf("user %s: %v %v", id, u, err)
	}
	return u.Status, u.DisabledByIdP
}

// One pass deactivates at most the refusal limit; the rest are held (the
// IdP is more likely wrong than everyone gone) until a pass refuses no more
// than the limit, after which refusals are acted on again.
func TestRevalidationBreakerHoldsMassRefusal(t *testing.T) {
	h := newRevalHarness(t)
	var people []*raftstore.User
	for i := range 10 {
		u, _ := h.signIn(fmt.Sprintf("p%02d", i), fmt.Sprintf("rt-%02d", i))
		h.bind(u)
		people = append(people, u)
		h.idp.script(u.ID, refusedGrant)
	}
	disabled := func() (n int) {
		for _, u := range people {
			if st, _ := h.statusOf(u.ID); st != raftstore.UserActive {
				n++
			}
		}
		return n
	}
	h.r.pass(context.Background(), h.clock.Now())
	if n := disabled(); n != DefaultMaxRefusals {
		t.Fatalf("one pass deactivated %d of 10 people, want the limit %d", n, DefaultMaxRefusals)
	}
	st := h.r.Stats()
	if st.Held != 10-DefaultMaxRefusals || !st.BreakerOpen {
		t.Fatalf("stats after the mass refusal %+v", st)
	}
	held := people[len(people)-1]
	if rec := h.record(held.ID); rec == nil || !strings.Contains(rec.LastFailure, "held by the breaker") {
		t.Fatalf("held person's record %+v", rec)
	}
	// Still refused: still held, however many passes.
	h.r.pass(context.Background(), h.clock.Now())
	if n := disabled(); n != DefaultMaxRefusals || !h.r.Stats().BreakerOpen {
		t.Fatalf("second pass: %d deactivated, stats %+v", n, h.r.Stats())
	}
	// The IdP is fixed; one person is truly gone. The pass holds them (the
	// breaker is open), sees no more than the limit, and closes it; the
	// next pass deactivates them.
	for _, u := range people {
		h.idp.script(u.ID)
	}
	h.idp.script(held.ID, refusedGrant)
	h.r.pass(context.Background(), h.clock.Now())
	if st, _ := h.statusOf(held.ID); st != raftstore.UserActive || h.r.Stats().BreakerOpen {
		t.Fatalf("closing pass: held person %s, stats %+v", st, h.r.Stats())
	}
	h.r.pass(context.Background(), h.clock.Now())
	if st, byIdP := h.statusOf(held.ID); st != raftstore.UserDisabled || !byIdP {
		t.Fatalf("after the breaker closed the refused person is %s (by IdP %v)", st, byIdP)
	}
}

// An invalid_grant right after an attempt that went unanswered may answer a
// token that attempt rotated: it is recorded as unverified, and the person
// is not deactivated (their key stops at the unverified bound).
func TestRevalidationInvalidGrantAfterUnverified(t *testing.T) {
	h := newRevalHarness(t)
	eve, _ := h.signIn("eve", "rt-eve")
	h.bind(eve)
	h.idp.script(eve.ID, fail(RefreshUnverified, "the identity provider cannot be reached", 0), refusedGrant)
	h.r.pass(context.Background(), h.clock.Now())
	h.r.pass(context.Background(), h.clock.Now())
	if st, _ := h.statusOf(eve.ID); st != raftstore.UserActive {
		t.Fatalf("eve was deactivated by an invalid_grant right after a lost attempt: %s", st)
	}
	rec := h.record(eve.ID)
	if rec == nil || rec.Failures != 2 || !strings.Contains(rec.LastFailure, "right after an unverified attempt") {
		t.Fatalf("eve's record %+v", rec)
	}
	if st := h.r.Stats(); st.Refused != 0 || st.Unverified != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A sign-in that asked for a refresh token and got none (consent to
// offline access declined, an IdP policy) starts the unverified bound: its
// key needs a browser sign-in again after oidc.unverified_binding_max, not
// binding_ttl. One that did not ask keeps binding_ttl.
func TestSignInWithoutRefreshTokenBounded(t *testing.T) {
	cases := []struct {
		name      string
		asked     bool
		wantAfter bool // the key still works 7h later (bound 1h, ttl 8h)
	}{
		{name: "fail/asked-none-given", asked: true, wantAfter: false},
		{name: "ok/not-asked", asked: false, wantAfter: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newRevalHarness(t)
			u, err := h.svc.Provision(context.Background(), &Identity{Subject: "sub-eve", Login: "eve", RefreshAsked: tc.asked})
			if err != nil {
				t.Fatal(err)
			}
			key := newKey(t)
			if _, err := h.svc.Bind(context.Background(), u, key, BindInfo{SourceAddr: "192.0.2.9:1"}); err != nil {
				t.Fatal(err)
			}
			if got, _, err := h.svc.BoundUser(key); got == nil || err != nil {
				t.Fatalf("key right after sign-in: %v %v", got, err)
			}
			h.r.pass(context.Background(), h.clock.Now())
			if len(h.idp.calls) != 0 {
				t.Fatalf("re-validation redeemed a token nobody gave: %+v", h.idp.calls)
			}
			h.clock.t = h.clock.t.Add(7 * time.Hour)
			if got, _, err := h.svc.BoundUser(key); err != nil || (got != nil) != tc.wantAfter {
				t.Fatalf("key 7h after sign-in: %v %v, want usable %v", got, err, tc.wantAfter)
			}
		})
	}
}

// racingStore applies before() ahead of the first write of a kind: a
// deactivation that lands between a read and the write built from it.
type racingStore struct {
	*revalHarness
	kind   raftstore.MessageType
	before func()
}

func (s *racingStore) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	if cmd.Type() == s.kind && s.before != nil {
		s.before()
		s.before = nil
	}
	return s.store.Apply(ctx, cmd)
}

func (s *racingStore) State() *raftstore.State { return s.store.State() }
func (s *racingStore) CheckFresh() error       { return s.store.CheckFresh() }
func (s *racingStore) WaitApplied(ctx context.Context, i uint64) error {
	return s.store.WaitApplied(ctx, i)
}
func (s *racingStore) IsLeader() bool { return s.store.IsLeader() }

// A sign-in's or a re-validation's write of a person, built from a read
// made before the person was deactivated, neither re-activates them nor
// keeps a token for them.
func TestStaleWriteKeepsDeactivation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(h *revalHarness, rs *racingStore, bob *raftstore.User) error
	}{
		{name: "fail/sign-in", run: func(h *revalHarness, rs *racingStore, bob *raftstore.User) error {
			svc := NewService(rs, 8*time.Hour, slog.New(slog.DiscardHandler))
			svc.SetRefreshTokens(h.kek, time.Hour)
			_, err := svc.Provision(ctx, &Identity{Subject: bob.ID, Login: "bob", Groups: []string{"ops"}, RefreshToken: "rt-bob-2"})
			return err
		}},
		{name: "fail/re-validation", run: func(h *revalHarness, rs *racingStore, bob *raftstore.User) error {
			svc := NewService(rs, 8*time.Hour, slog.New(slog.DiscardHandler))
			svc.SetRefreshTokens(h.kek, time.Hour)
			h.idp.script(bob.ID, rotateTo("rt-bob-2", &Identity{Subject: bob.ID, Login: "bob", Groups: []string{"ops"}}))
			h.r.cfg.Users, h.r.cfg.Store = svc, rs
			h.r.pass(ctx, h.clock.Now())
			return ErrDeactivatedInIdP // the pass reports nothing; the state is checked below
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newRevalHarness(t)
			bob, _ := h.signIn("bob", "rt-bob", "eng")
			h.bind(bob)
			ctl := control.New(control.Deps{Store: h.store, Auditor: control.StoreAuditor{Store: h.store, Now: h.clock.Now}, Now: h.clock.Now, Logger: slog.New(slog.DiscardHandler)})
			rs := &racingStore{revalHarness: h, kind: raftstore.UserUpsertType, before: func() {
				if _, err := ctl.DeactivateFromIdP(ctx, control.Actor{Name: "scim:test"}, bob.ID, raftstore.ViaSCIM, "scim active=false"); err != nil {
					t.Fatal(err)
				}
			}}
			if err := tc.run(h, rs, bob); !errors.Is(err, ErrDeactivatedInIdP) {
				t.Fatalf("err %v, want the person refused as deactivated", err)
			}
			if rs.before != nil {
				t.Fatal("the racing deactivation never ran: the case wrote no user")
			}
			if st, byIdP := h.statusOf(bob.ID); st != raftstore.UserDisabled || !byIdP {
				t.Fatalf("a stale write re-activated bob: %s (by IdP %v)", st, byIdP)
			}
			if rec := h.record(bob.ID); rec != nil {
				t.Fatalf("a token was kept for a deactivated person: %+v", rec)
			}
		})
	}
}

// A person whose only way in is an open connection signed in without a key
// (ssh -o PubkeyAuthentication=no admin@bastion) stays re-validated while a
// front door holds their IdP session, and is deactivated when the IdP
// refuses them; once the hold runs out their token is dropped.
func TestRevalidationCoversKeylessConnections(t *testing.T) {
	ctx := context.Background()
	h := newRevalHarness(t)
	gus, _ := h.signIn("gus", "rt-gus") // no binding
	hal, _ := h.signIn("hal", "rt-hal")
	for _, u := range []*raftstore.User{gus, hal} {
		if err := h.svc.HoldIdPSession(ctx, u.ID, "door-1", h.clock.Now().Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	h.idp.script(gus.ID, refusedGrant)
	h.r.pass(ctx, h.clock.Now())
	if st, byIdP := h.statusOf(gus.ID); st != raftstore.UserDisabled || !byIdP {
		t.Fatalf("the IdP refused gus, whose keyless connection is open, and he is %s (by IdP %v)", st, byIdP)
	}
	if h.record(hal.ID) == nil || !slices.ContainsFunc(h.idp.calls, func(c idpCall) bool { return c.user == hal.ID }) {
		t.Fatal("hal's held session was not re-validated")
	}
	h.clock.t = h.clock.t.Add(11 * time.Minute) // the front door stopped renewing
	h.r.pass(ctx, h.clock.Now())
	if h.record(hal.ID) != nil {
		t.Fatal("hal's token was kept after the hold ran out")
	}
}
