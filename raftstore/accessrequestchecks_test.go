package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The leader refuses a request command whose time is more than
// MaxProposalSkew from its own clock: the window would be computed from
// another node's clock.
func TestAdmitRefusesSkewedTime(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	for _, tc := range []struct {
		name string
		skew time.Duration
		ok   bool
	}{
		{"ok/in-sync", 0, true},
		{"ok/within-bound", MaxProposalSkew - time.Second, true},
		{"fail/ahead", MaxProposalSkew + 2*time.Second, false},
		// Behind only shortens a window, and a command retried through an
		// election keeps the time it was made with.
		{"ok/behind-after-retries", -40 * time.Second, true},
		{"fail/behind", -MaxProposalDelay - 10*time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(testCtx(t), &AccessRequestExpire{IDs: []string{"r-aaaaaaaa"}, Now: time.Now().Add(tc.skew)})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "NTP") {
				t.Fatalf("err = %v, want a refusal naming the clocks", err)
			}
		})
	}
}

// Two accounts of one person (the same e-mail address, in any case) are
// one person: neither approves the other's request, not even as an
// administrator, and two approvals need two addresses.
func TestAccessRequestSamePersonTwoAccounts(t *testing.T) {
	f := jitFSM(t)
	for _, u := range []User{
		{ID: "alice", Login: "alice", UnixName: "alice", Groups: []string{"eng"}, Email: "alice@example.com", EmailVerified: true},
		{ID: "alice2", Login: "alice2", UnixName: "alice2", Groups: []string{"leads"}, Email: "Alice@Example.com", EmailVerified: true},
		{ID: "bob", Login: "bob", UnixName: "bob", Groups: []string{"leads"}, Email: "bob@example.com", EmailVerified: true},
		{ID: "bob2", Login: "bob2", UnixName: "bob2", Groups: []string{"leads"}, Email: "BOB@example.com", EmailVerified: true},
	} {
		mustApply(t, f, &UserUpsert{User: u, EnsureGroups: true, Now: testNow})
	}
	mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	for _, by := range []Decider{{ID: "alice2", Login: "alice2"}, {ID: "alice2", Login: "alice2", Admin: true}} {
		res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: by, Now: testNow})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "your own request") {
			t.Fatalf("approval by %+v, the requester's second account: %v", by, res.Err)
		}
	}
	if res := apply(t, f, &AccessRequestDeny{ID: "r-aaaaaaaa", By: Decider{ID: "alice2", Login: "alice2"}, Reason: "x", Now: testNow}); res.Err == nil {
		t.Fatal("the requester's second account denied it")
	}
	// Giving it up from the second account is still giving it up.
	mustApply(t, f, &AccessRequestRevoke{ID: "r-aaaaaaaa", By: Decider{ID: "alice2", Login: "alice2"}, Reason: "done", Now: testNow})

	mustApply(t, f, &AccessRequestCreate{ID: "r-bbbbbbbb", Project: "db", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	mustApply(t, f, &AccessRequestApprove{ID: "r-bbbbbbbb", By: Decider{ID: "bob", Login: "bob"}, Now: testNow})
	if res := apply(t, f, &AccessRequestApprove{ID: "r-bbbbbbbb", By: Decider{ID: "bob2", Login: "bob2"}, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("bob's second account gave the second approval: %v", res.Err)
	}
	r := mustApply(t, f, &AccessRequestApprove{ID: "r-bbbbbbbb", By: Decider{ID: "carol", Login: "carol"}, Now: testNow}).(*AccessRequest)
	if r.State != RequestApproved {
		t.Fatalf("bob and carol: %+v", r)
	}
}

// An address the identity provider did not verify restricts (the account
// counts as the same person: no approving) but never allows: an account
// that set its address to someone else's cannot give up (revoke) their
// request as if it were theirs.
func TestAccessRequestUnverifiedAddressDoesNotRevoke(t *testing.T) {
	f := jitFSM(t)
	for _, u := range []User{
		{ID: "alice", Login: "alice", UnixName: "alice", Groups: []string{"eng"}, Email: "alice@example.com", EmailVerified: true},
		{ID: "mallory", Login: "mallory", UnixName: "mallory", Groups: []string{"eng"}, Email: "alice@example.com"},
	} {
		mustApply(t, f, &UserUpsert{User: u, EnsureGroups: true, Now: testNow})
	}
	mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	if res := apply(t, f, &AccessRequestRevoke{ID: "r-aaaaaaaa", By: Decider{ID: "mallory", Login: "mallory"}, Reason: "gotcha", Now: testNow}); res.Err == nil {
		t.Fatal("an account with alice's unverified address revoked her request")
	}
	if res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: Decider{ID: "mallory", Login: "mallory", Admin: true}, Now: testNow}); res.Err == nil {
		t.Fatal("an account with alice's address approved her request")
	}
}

// An approval from someone who has since left the approver groups, or been
// disabled, no longer counts toward the number needed when the last one
// lands; an administrator's stands while they are active.
func TestAccessRequestStaleApprovalDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  Decider
		change User
		counts bool
	}{
		{"fail/left-approver-group", Decider{ID: "bob", Login: "bob"}, User{ID: "bob", Login: "bob", UnixName: "bob", Groups: []string{"ops"}}, false},
		{"fail/disabled", Decider{ID: "bob", Login: "bob"}, User{ID: "bob", Login: "bob", UnixName: "bob", Groups: []string{"leads"}, Status: UserDisabled}, false},
		{"ok/still-approver", Decider{ID: "bob", Login: "bob"}, User{ID: "bob", Login: "bob", UnixName: "bob", Groups: []string{"leads", "ops"}}, true},
		{"ok/admin-still-active", Decider{ID: "dave", Login: "dave", Admin: true}, User{ID: "dave", Login: "dave", UnixName: "dave", Groups: []string{"ops", "x"}}, true},
		{"fail/admin-disabled", Decider{ID: "dave", Login: "dave", Admin: true}, User{ID: "dave", Login: "dave", UnixName: "dave", Groups: []string{"ops"}, Status: UserDisabled}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := jitFSM(t)
			mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "db", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
			mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: tc.first, Now: testNow})
			if tc.change.Status == UserDisabled {
				mustApply(t, f, &UserSetStatus{ID: tc.change.ID, Status: UserDisabled, Now: testNow})
			} else {
				mustApply(t, f, &UserUpsert{User: tc.change, EnsureGroups: true, Now: testNow})
			}
			r := mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: Decider{ID: "carol", Login: "carol"}, Now: testNow}).(*AccessRequest)
			if got := r.State == RequestApproved; got != tc.counts {
				t.Fatalf("approved = %v, want %v: %+v", got, tc.counts, r)
			}
			if !tc.counts && (len(r.Approvals) != 1 || r.Approvals[0].By != "carol") {
				t.Fatalf("approvals %+v, want carol's alone", r.Approvals)
			}
		})
	}
}

// Reasons refuse format characters: a right-to-left override or a
// zero-width space would make a reason read as something else.
func TestAccessRequestReasonRefusesFormatCharacters(t *testing.T) {
	for _, reason := range []string{"fix \u202egnp.exe", "deploy\u200b", "\u2066x\u2069"} {
		c := &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: reason, Duration: time.Hour, Now: testNow}
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("reason %q: %v", reason, err)
		}
		d := &AccessRequestDeny{ID: "r-aaaaaaaa", By: Decider{ID: "bob", Login: "bob"}, Reason: reason, Now: testNow}
		if err := d.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("deny reason %q: %v", reason, err)
		}
	}
	ok := &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "déploiement — 修正", Duration: time.Hour, Now: testNow}
	if err := ok.Validate(); err != nil {
		t.Errorf("plain non-ASCII reason refused: %v", err)
	}
}
