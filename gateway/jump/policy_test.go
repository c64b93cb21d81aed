package jump

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

func testState(t *testing.T) *raftstore.FSM {
	t.Helper()
	f, err := raftstore.NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, cmd := range []raftstore.Command{
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"deploy"}}}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www"}, Addr: "127.0.0.31", SSHPort: 22}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "db", Name: "db-1", Addr: "127.0.0.32", SSHPort: 22}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s3", Project: "web", Name: "meta", Addr: "169.254.169.254", SSHPort: 22}, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "u2", Login: "bob", UnixName: "bob", Groups: []string{"ops"}}, EnsureGroups: true, Now: now},
	} {
		buf, err := raftstore.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.ApplyCommand(uint64(i+1), buf); res.Err != nil {
			t.Fatalf("%T: %v", cmd, res.Err)
		}
	}
	return f
}

func TestResolve(t *testing.T) {
	st := testState(t).State()
	own := []net.IP{net.ParseIP("127.0.0.1")}
	cases := []struct {
		name    string
		host    string
		port    uint32
		want    string
		wantErr error
	}{
		{"ok/canonical-name", "web-1", 22, "s1", nil},
		{"ok/alt-name-any-case", "WWW.", 22, "s1", nil},
		{"ok/address", "127.0.0.31", 22, "s1", nil},
		{"fail/unenrolled-name", "web-9", 22, "", ErrNotEnrolled},
		{"fail/unenrolled-ip", "10.1.2.3", 22, "", ErrNotEnrolled},
		{"fail/metadata-ip", "169.254.169.254", 22, "", ErrForbiddenAddr},
		{"fail/enrolled-at-metadata-ip", "meta", 22, "", ErrForbiddenAddr},
		{"fail/own-address", "127.0.0.1", 22, "", ErrForbiddenAddr},
		{"fail/link-local", "fe80::1", 22, "", ErrForbiddenAddr},
		{"fail/other-port", "web-1", 80, "", ErrWrongPort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, err := resolve(st, tc.host, tc.port, own)
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
	acc, err := authorize(st, alice, web1)
	if err != nil {
		t.Fatalf("alice on web-1: %v", err)
	}
	for login, ok := range map[string]bool{"alice": true, "deploy": true, "root": false, "bob": false} {
		if err := acc.loginAllowed(alice, login); (err == nil) != ok {
			t.Errorf("login %s: err %v, want allowed=%v", login, err, ok)
		}
	}
	// A shared login that is a person's unix name (state from before the
	// cluster refused it) opens nobody's account.
	legacy := *acc.project
	legacy.Settings.SharedLogins = []string{"bob", "deploy"}
	accLegacy := &access{project: &legacy, grants: acc.grants, st: st}
	if err := accLegacy.loginAllowed(alice, "bob"); !errors.Is(err, ErrLoginDenied) {
		t.Errorf("shared login bob (a person's unix name): err %v, want ErrLoginDenied", err)
	}
	if _, err := authorize(st, alice, db1); !errors.Is(err, ErrNotInProject) {
		t.Errorf("alice on db-1 (no grant): %v", err)
	}
	if _, err := authorize(st, bob, web1); !errors.Is(err, ErrNotInProject) {
		t.Errorf("bob (other group) on web-1: %v", err)
	}
	disabled := *alice
	disabled.Status = raftstore.UserDisabled
	if _, err := authorize(st, &disabled, web1); !errors.Is(err, ErrUserInactive) {
		t.Errorf("disabled alice: %v", err)
	}
}

func TestStricter(t *testing.T) {
	open := raftstore.ProjectSettings{AllowLocalForward: true, AllowRemoteForward: true, AllowAgentForward: true, RecordingFailOpen: true,
		IdleTimeout: time.Hour, MaxSessionDuration: 8 * time.Hour}
	cases := []struct {
		name   string
		change func(*raftstore.ProjectSettings)
		want   bool
	}{
		{"ok/unchanged", func(*raftstore.ProjectSettings) {}, false},
		{"ok/looser-time", func(s *raftstore.ProjectSettings) { s.IdleTimeout = 0; s.MaxSessionDuration = 9 * time.Hour }, false},
		{"ok/shared-logins-alone", func(s *raftstore.ProjectSettings) { s.SharedLogins = []string{"deploy"} }, false},
		{"fail/local-forward-off", func(s *raftstore.ProjectSettings) { s.AllowLocalForward = false }, true},
		{"fail/remote-forward-off", func(s *raftstore.ProjectSettings) { s.AllowRemoteForward = false }, true},
		{"fail/agent-forward-off", func(s *raftstore.ProjectSettings) { s.AllowAgentForward = false }, true},
		{"fail/recording-on", func(s *raftstore.ProjectSettings) { s.Recording = true }, true},
		{"fail/fail-closed", func(s *raftstore.ProjectSettings) { s.RecordingFailOpen = false }, true},
		{"fail/idle-timeout-shorter", func(s *raftstore.ProjectSettings) { s.IdleTimeout = time.Minute }, true},
		{"fail/max-duration-shorter", func(s *raftstore.ProjectSettings) { s.MaxSessionDuration = time.Hour }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := open
			tc.change(&now)
			if got := stricter(open, now); got != tc.want {
				t.Fatalf("stricter = %v, want %v (now %+v)", got, tc.want, now)
			}
		})
	}
	t.Run("fail/record-input-on-while-recording", func(t *testing.T) {
		then := raftstore.ProjectSettings{Recording: true}
		if !stricter(then, raftstore.ProjectSettings{Recording: true, RecordInput: true}) {
			t.Fatal("recording input newly was not stricter")
		}
	})
}
