package login

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The service runs on the shared in-memory store as on the node's.
var (
	_ Store = (*raftstoretest.Store)(nil)
	_ Store = (*raftstore.Store)(nil)
)

type recordedEvent struct {
	event, user string
	fields      map[string]string
}

type fakeAuditor struct{ events []recordedEvent }

func (a *fakeAuditor) Record(event, user string, fields map[string]string) {
	a.events = append(a.events, recordedEvent{event, user, fields})
}

// Identity is the subject: two subjects claiming one login are two people
// with two unix names, and a project's shared login is never a person's.
func TestProvisionCollisions(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		shared   []string
		prior    []Identity
		id       Identity
		wantUnix string
		wantLogs int // user.login_collision events
	}{
		{name: "ok/first-sign-in", id: Identity{Subject: "s1", Login: "alice"}, wantUnix: "alice"},
		{name: "ok/same-subject-again", prior: []Identity{{Subject: "s1", Login: "alice"}}, id: Identity{Subject: "s1", Login: "alice", Email: "a@x"}, wantUnix: "alice"},
		{name: "ok/second-subject-same-login-gets-suffix", prior: []Identity{{Subject: "s1", Login: "alice"}}, id: Identity{Subject: "s2", Login: "Alice"}, wantUnix: "alice-2", wantLogs: 1},
		{name: "ok/recycled-login-of-renamed-person", prior: []Identity{{Subject: "s1", Login: "bob"}, {Subject: "s1", Login: "robert"}}, id: Identity{Subject: "s2", Login: "bob"}, wantUnix: "bob-2"},
		{name: "ok/shared-login-is-reserved", shared: []string{"deploy"}, id: Identity{Subject: "s3", Login: "deploy"}, wantUnix: "deploy-2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := raftstoretest.New(t)
			svc := NewService(store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
			audit := &fakeAuditor{}
			svc.SetAuditor(audit)
			if tc.shared != nil {
				if _, err := store.Apply(ctx, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: tc.shared}}, Now: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range tc.prior {
				if _, err := svc.Provision(ctx, &tc.prior[i]); err != nil {
					t.Fatalf("prior sign-in %d: %v", i, err)
				}
			}
			audit.events = nil
			u, err := svc.Provision(ctx, &tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.id.Subject || u.UnixName != tc.wantUnix {
				t.Fatalf("got user %s with unix name %s; want %s with %s", u.ID, u.UnixName, tc.id.Subject, tc.wantUnix)
			}
			if len(audit.events) != tc.wantLogs {
				t.Fatalf("audit events %+v; want %d user.login_collision", audit.events, tc.wantLogs)
			}
			for _, e := range audit.events {
				if e.event != "login_name.collide" || e.fields["subject"] != tc.id.Subject || e.fields["other_subjects"] != "s1" {
					t.Fatalf("audit event %+v", e)
				}
			}
		})
	}
}

// A person the IdP deactivated is refused at sign-in and with a bound key in
// the IdP's words; one an administrator disabled, in the administrator's.
func TestDeactivatedInIdPRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		byIdP bool
		want  string
	}{
		{name: "fail/deactivated-by-idp", byIdP: true, want: "your account was deactivated in the identity provider"},
		{name: "fail/disabled-by-admin", want: "your account is disabled; ask an administrator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := raftstoretest.New(t)
			svc := NewService(store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if _, err := svc.Provision(ctx, &Identity{Subject: "s1", Login: "alice"}); err != nil {
				t.Fatal(err)
			}
			store.MustApply(t, &raftstore.UserSetStatus{ID: "s1", Status: raftstore.UserDisabled, ByIdP: tc.byIdP, Now: time.Now()})
			_, err := svc.Provision(ctx, &Identity{Subject: "s1", Login: "alice"})
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrUserDisabled) {
				t.Fatalf("sign-in: %v, want %q (and an ErrUserDisabled)", err, tc.want)
			}
			if _, err := svc.ActiveUser("s1"); err == nil || err.Error() != tc.want {
				t.Fatalf("bound key: %v, want %q", err, tc.want)
			}
		})
	}
}
