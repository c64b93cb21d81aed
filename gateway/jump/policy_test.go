package jump

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
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
			srv, _, err := resolve(st, tc.host, tc.port, tc.rule)
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

func TestBindingRevoked(t *testing.T) {
	f := testState(t)
	key, err := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	fp := gossh.FingerprintSHA256(key)
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	now := time.Now()
	idx := uint64(100)
	apply := func(cmd raftstore.Command) *raftstore.Binding {
		t.Helper()
		buf, err := raftstore.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		res := f.ApplyCommand(idx, buf)
		if res.Err != nil {
			t.Fatalf("%T: %v", cmd, res.Err)
		}
		b, _ := res.Value.(*raftstore.Binding)
		return b
	}
	bind := func(user string) *raftstore.Binding {
		return apply(&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: fp, UserID: user, PublicKey: line, ExpiresAt: now.Add(time.Hour)}, Now: now})
	}
	first := bind("u1")
	signedIn := Identity{UserID: "u1", Binding: fp, BindingIndex: first.CreateIndex}
	cases := []struct {
		name   string
		change func()
		id     Identity
		want   bool
	}{
		{"ok/live", func() {}, signedIn, false},
		{"ok/refreshed-by-a-later-sign-in", func() { bind("u1") }, signedIn, false},
		{"ok/no-binding-nothing-to-lose", func() {}, Identity{UserID: "u1"}, false},
		{"fail/revoked", func() { apply(&raftstore.BindingDelete{Fingerprint: fp}) }, signedIn, true},
		{"fail/revoked-and-bound-again", func() { bind("u1") }, signedIn, true},
		{"fail/bound-to-another-user", func() { bind("u2") }, Identity{UserID: "u1", Binding: fp}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			if got := bindingRevoked(f.State(), tc.id); got != tc.want {
				t.Errorf("bindingRevoked = %v, want %v", got, tc.want)
			}
		})
	}
}
