package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// jitFSM has project web taking requests from eng, approved by leads (two
// approvals on db), and alice (eng), bob and carol (leads), dave (ops).
func jitFSM(t *testing.T) *FSM {
	t.Helper()
	f := testFSM(t)
	user := func(id string, groups ...string) Command {
		return &UserUpsert{User: User{ID: id, Login: id, UnixName: id, Groups: groups}, EnsureGroups: true, Now: testNow}
	}
	for _, c := range []Command{
		&ClusterInit{ClusterID: "c", Now: testNow, UIDStart: DefaultUIDStart, UIDEnd: DefaultUIDEnd, GIDStart: DefaultGIDStart, GIDEnd: DefaultGIDEnd,
			TLSCACert: testCertPEM(t, 9), TLSCAKeySealed: []byte{1}},
		user("alice", "eng"), user("bob", "leads"), user("carol", "leads"), user("dave", "ops"),
		&ProjectUpsert{Project: Project{Name: "web", Settings: ProjectSettings{SharedLogins: []string{"deploy"},
			Requests: &RequestPolicy{Requesters: []string{"eng"}, Approvers: []string{"leads"}, MaxDuration: 2 * time.Hour}}}, Now: testNow},
		&ProjectUpsert{Project: Project{Name: "db", Settings: ProjectSettings{
			Requests: &RequestPolicy{Approvers: []string{"leads"}, Approvals: 2}}}, Now: testNow},
		&ProjectUpsert{Project: Project{Name: "closed"}, Now: testNow},
	} {
		mustApply(t, f, c)
	}
	return f
}

func TestAccessRequestCreate(t *testing.T) {
	cases := []struct {
		name string
		cmd  AccessRequestCreate
		want string // "" ok, else a part of the error
	}{
		{"ok/own-login", AccessRequestCreate{Project: "web", UserID: "alice", Reason: "deploy", Duration: time.Hour}, ""},
		{"ok/shared-login", AccessRequestCreate{Project: "web", UserID: "alice", Login: "deploy", Reason: "deploy", Duration: time.Hour}, ""},
		{"fail/beyond-maximum", AccessRequestCreate{Project: "web", UserID: "alice", Reason: "x", Duration: 3 * time.Hour}, "longer than project web allows"},
		{"fail/default-maximum", AccessRequestCreate{Project: "db", UserID: "alice", Reason: "x", Duration: 9 * time.Hour}, "at most 8h0m0s"},
		{"fail/project-takes-none", AccessRequestCreate{Project: "closed", UserID: "alice", Reason: "x", Duration: time.Hour}, "does not take access requests"},
		{"fail/not-a-requester", AccessRequestCreate{Project: "web", UserID: "dave", Reason: "x", Duration: time.Hour}, "not in a group that may request"},
		{"fail/no-reason", AccessRequestCreate{Project: "web", UserID: "alice", Duration: time.Hour}, "reason is required"},
		{"fail/other-login", AccessRequestCreate{Project: "web", UserID: "alice", Login: "bob", Reason: "x", Duration: time.Hour}, "does not share it"},
		{"fail/no-project", AccessRequestCreate{Project: "nope", UserID: "alice", Reason: "x", Duration: time.Hour}, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := jitFSM(t)
			tc.cmd.ID, tc.cmd.Now = "r-aaaaaaaa", testNow
			res := apply(t, f, &tc.cmd)
			if tc.want == "" {
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				r := res.Value.(*AccessRequest)
				if r.State != RequestPending || r.Needed != 1 || r.PendingUntil != testNow.Add(RequestPendingTTL) {
					t.Errorf("stored %+v", r)
				}
				return
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", res.Err, tc.want)
			}
		})
	}
}

func TestAccessRequestCreateOnePendingPerProject(t *testing.T) {
	f := jitFSM(t)
	mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	res := apply(t, f, &AccessRequestCreate{ID: "r-bbbbbbbb", Project: "web", UserID: "alice", Reason: "y", Duration: time.Hour, Now: testNow})
	if !errors.Is(res.Err, ErrConflict) || !strings.Contains(res.Err.Error(), "r-aaaaaaaa") {
		t.Fatalf("second pending request: %v", res.Err)
	}
	// Once the first expires unapproved, another may be made.
	mustApply(t, f, &AccessRequestCreate{ID: "r-cccccccc", Project: "web", UserID: "alice", Reason: "y", Duration: time.Hour, Now: testNow.Add(RequestPendingTTL)})
}

func TestAccessRequestWindows(t *testing.T) {
	f := jitFSM(t)
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "office", Settings: ProjectSettings{Requests: &RequestPolicy{Approvers: []string{"leads"},
		Windows: []RequestWindow{{Days: "mon-fri", Start: "09:00", End: "18:00"}}}}}, Now: testNow})
	// testNow is Wednesday 25 November 2026, 10:00 UTC.
	mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "office", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	sat := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	if res := apply(t, f, &AccessRequestCreate{ID: "r-bbbbbbbb", Project: "office", UserID: "bob", Reason: "x", Duration: time.Hour, Now: sat}); res.Err == nil || !strings.Contains(res.Err.Error(), "only in its windows") {
		t.Fatalf("saturday: %v", res.Err)
	}
	night, err := ParseRequestWindow("sat,sun 22:00-06:00")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true},  // Saturday night
		{time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC), true},   // Monday morning belongs to Sunday's window
		{time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), false}, // Monday night
		{time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), false},
	} {
		if got, _ := night.contains(tc.at); got != tc.want {
			t.Errorf("%s in %s = %v, want %v", tc.at, night, got, tc.want)
		}
	}
	if _, err := ParseRequestWindow("someday 09:00-10:00"); err == nil {
		t.Error("a bad weekday parsed")
	}
}

func TestAccessRequestApprove(t *testing.T) {
	bob := Decider{ID: "bob", Login: "bob"}
	carol := Decider{ID: "carol", Login: "carol"}
	t.Run("fail/self-approval", func(t *testing.T) {
		f := jitFSM(t)
		mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
		// Not even an administrator approves their own request.
		res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: Decider{ID: "alice", Login: "alice", Admin: true}, Now: testNow})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "your own request") {
			t.Fatalf("self-approval: %v", res.Err)
		}
	})
	t.Run("fail/not-an-approver", func(t *testing.T) {
		f := jitFSM(t)
		mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
		res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: Decider{ID: "dave", Login: "dave"}, Now: testNow})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "not an approver") {
			t.Fatalf("dave approved: %v", res.Err)
		}
		mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: Decider{ID: "dave", Login: "dave", Admin: true}, Now: testNow})
	})
	t.Run("ok/one-approval-starts-the-window", func(t *testing.T) {
		f := jitFSM(t)
		mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
		at := testNow.Add(10 * time.Minute)
		r := mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: bob, Now: at}).(*AccessRequest)
		if r.State != RequestApproved || !r.ExpiresAt.Equal(at.Add(time.Hour)) {
			t.Fatalf("after approval: %+v", r)
		}
		if !r.ActiveAt(at.Add(59*time.Minute)) || r.ActiveAt(at.Add(time.Hour)) || r.StateAt(at.Add(time.Hour)) != RequestExpired {
			t.Error("the window is not [approval, approval+duration)")
		}
		if res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: carol, Now: at}); !errors.Is(res.Err, ErrConflict) {
			t.Errorf("approving an approved request: %v", res.Err)
		}
	})
	t.Run("ok/two-approvals-from-two-people", func(t *testing.T) {
		f := jitFSM(t)
		mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "db", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
		r := mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: bob, Now: testNow}).(*AccessRequest)
		if r.State != RequestPending || r.Needed != 2 {
			t.Fatalf("one of two approvals: %+v", r)
		}
		if res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: bob, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
			t.Fatalf("bob's second approval counted: %v", res.Err)
		}
		r = mustApply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: carol, Now: testNow}).(*AccessRequest)
		if r.State != RequestApproved || len(r.Approvals) != 2 {
			t.Fatalf("two approvals: %+v", r)
		}
	})
	t.Run("fail/pending-expired", func(t *testing.T) {
		f := jitFSM(t)
		mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
		if res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: bob, Now: testNow.Add(RequestPendingTTL)}); !errors.Is(res.Err, ErrConflict) {
			t.Fatalf("approving an expired request: %v", res.Err)
		}
	})
}

func TestAccessRequestDenyRevokeExpire(t *testing.T) {
	bob := Decider{ID: "bob", Login: "bob"}
	f := jitFSM(t)
	mustApply(t, f, &AccessRequestCreate{ID: "r-aaaaaaaa", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	if res := apply(t, f, &AccessRequestDeny{ID: "r-aaaaaaaa", By: bob, Now: testNow}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("deny without a reason: %v", res.Err)
	}
	r := mustApply(t, f, &AccessRequestDeny{ID: "r-aaaaaaaa", By: bob, Reason: "not during the freeze", Now: testNow}).(*AccessRequest)
	if r.State != RequestDenied || r.DecisionReason != "not during the freeze" || r.DecidedBy != "bob" {
		t.Fatalf("denied: %+v", r)
	}
	if res := apply(t, f, &AccessRequestApprove{ID: "r-aaaaaaaa", By: bob, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("approving a denied request: %v", res.Err)
	}

	mustApply(t, f, &AccessRequestCreate{ID: "r-bbbbbbbb", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	mustApply(t, f, &AccessRequestApprove{ID: "r-bbbbbbbb", By: bob, Now: testNow})
	r = mustApply(t, f, &AccessRequestRevoke{ID: "r-bbbbbbbb", By: bob, Reason: "done", Now: testNow.Add(time.Minute)}).(*AccessRequest)
	if r.State != RequestRevoked || r.ActiveAt(testNow.Add(2*time.Minute)) {
		t.Fatalf("revoked: %+v", r)
	}

	mustApply(t, f, &AccessRequestCreate{ID: "r-cccccccc", Project: "web", UserID: "alice", Reason: "x", Duration: time.Hour, Now: testNow})
	mustApply(t, f, &AccessRequestApprove{ID: "r-cccccccc", By: bob, Now: testNow})
	ids := []string{"r-aaaaaaaa", "r-bbbbbbbb", "r-cccccccc"}
	if got := mustApply(t, f, &AccessRequestExpire{IDs: ids, Now: testNow.Add(59 * time.Minute)}).([]*AccessRequest); len(got) != 0 {
		t.Fatalf("expired early: %v", got)
	}
	got := mustApply(t, f, &AccessRequestExpire{IDs: ids, Now: testNow.Add(time.Hour)}).([]*AccessRequest)
	if len(got) != 1 || got[0].ID != "r-cccccccc" || got[0].State != RequestExpired || !got[0].EndedAt.Equal(testNow.Add(time.Hour)) {
		t.Fatalf("expired: %+v", got)
	}
	if res := apply(t, f, &AccessRequestRevoke{ID: "r-cccccccc", By: bob, Reason: "late", Now: testNow.Add(2 * time.Hour)}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("revoking an expired request: %v", res.Err)
	}
}
