package access

import (
	"errors"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// Moved from gateway/jump/policy_test.go with the code they test.

func testState(t *testing.T) *raftstoretest.Store {
	t.Helper()
	s := raftstoretest.New(t)
	now := time.Now()
	s.MustApply(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"deploy"}}}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www"}, Addr: "127.0.0.31", SSHPort: 22}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "db", Name: "db-1", Addr: "127.0.0.32", SSHPort: 22}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s3", Project: "web", Name: "meta", Addr: "169.254.169.254", SSHPort: 22}, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "u2", Login: "bob", UnixName: "bob", Groups: []string{"ops"}}, EnsureGroups: true, Now: now},
	)
	return s
}

func TestResolve(t *testing.T) {
	st := testState(t).State()
	// Targets on 127.0.0.N, as in the e2e tests.
	own := &targetaddr.Rule{AllowLoopback: true, Listeners: targetaddr.ParseListeners("127.0.0.1:2222", "127.0.0.1:8443")}
	strict := &targetaddr.Rule{Listeners: own.Listeners}
	cases := []struct {
		name    string
		host    string
		port    uint32
		rule    *targetaddr.Rule
		want    string
		wantErr error
	}{
		{"ok/canonical-name", "web-1", 22, own, "s1", nil},
		{"ok/alt-name-any-case", "WWW.", 22, own, "s1", nil},
		{"ok/address", "127.0.0.31", 22, own, "s1", nil},
		{"fail/unenrolled-name", "web-9", 22, own, "", ErrNotEnrolled},
		{"fail/unenrolled-ip", "10.1.2.3", 22, own, "", ErrNotEnrolled},
		{"fail/metadata-ip", "169.254.169.254", 22, own, "", ErrForbiddenAddr},
		{"fail/enrolled-at-metadata-ip", "meta", 22, own, "", ErrForbiddenAddr},
		{"fail/own-address", "127.0.0.1", 22, own, "", ErrForbiddenAddr},
		{"fail/link-local", "fe80::1", 22, own, "", ErrForbiddenAddr},
		{"fail/other-port", "web-1", 80, own, "", ErrWrongPort},
		{"fail/loopback-not-allowed", "web-1", 22, strict, "", ErrForbiddenAddr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, err := New(st, tc.rule, nil).Resolve(tc.host, tc.port)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || srv.ID != tc.want {
				t.Fatalf("resolve(%q) = %v, %v; want %s", tc.host, srv, err, tc.want)
			}
		})
	}
}

func TestAuthorizeAndLogin(t *testing.T) {
	st := testState(t).State()
	_, alice, _ := st.UserByID(nil, "u1")
	_, bob, _ := st.UserByID(nil, "u2")
	_, web1, _ := st.ServerByID(nil, "s1")
	_, db1, _ := st.ServerByID(nil, "s2")
	e := New(st, nil, nil)
	acc, err := e.ServerAccess(alice, web1)
	if err != nil {
		t.Fatalf("alice on web-1: %v", err)
	}
	for login, ok := range map[string]bool{"alice": true, "deploy": true, "root": false, "bob": false} {
		if err := acc.Login(alice, login); (err == nil) != ok {
			t.Errorf("login %s: err %v, want allowed=%v", login, err, ok)
		}
	}
	// A shared login that is a person's unix name (state from before the
	// cluster refused it) opens nobody's account.
	legacy := *acc.Project
	legacy.Settings.SharedLogins = []string{"bob", "deploy"}
	accLegacy := &Access{Project: &legacy, Grants: acc.Grants, e: e}
	if err := accLegacy.Login(alice, "bob"); !errors.Is(err, ErrLoginDenied) {
		t.Errorf("shared login bob (a person's unix name): err %v, want ErrLoginDenied", err)
	}
	if _, err := e.ServerAccess(alice, db1); !errors.Is(err, ErrNotInProject) {
		t.Errorf("alice on db-1 (no grant): %v", err)
	}
	if _, err := e.ServerAccess(bob, web1); !errors.Is(err, ErrNotInProject) {
		t.Errorf("bob (other group) on web-1: %v", err)
	}
	disabled := *alice
	disabled.Status = raftstore.UserDisabled
	if _, err := e.ServerAccess(&disabled, web1); !errors.Is(err, ErrUserInactive) {
		t.Errorf("disabled alice: %v", err)
	}
}
