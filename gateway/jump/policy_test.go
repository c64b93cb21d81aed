package jump

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

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
	apply := func(cmd raftstore.Command) *raftstore.Result {
		t.Helper()
		return f.MustApply(t, cmd)
	}
	bind := func(user string) *raftstore.Binding {
		t.Helper()
		var b raftstore.Binding
		if err := apply(&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: fp, UserID: user, PublicKey: line, ExpiresAt: now.Add(time.Hour)}, Now: now}).Decode(&b); err != nil {
			t.Fatal(err)
		}
		return &b
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

// A group the IdP takes away (a sign-in's or re-validation's upsert with the
// groups of the new ID token) ends the live sessions its grant allowed; a
// change that keeps the granting group ends nothing.
func TestRevokedWhenGroupRemoved(t *testing.T) {
	cases := []struct {
		name   string
		groups []string
		want   string
	}{
		{"ok/group-kept", []string{"eng", "ops"}, ""},
		{"fail/group-removed", []string{"ops"}, "your access to project web was revoked"},
		{"fail/no-groups", nil, "your access to project web was revoked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testState(t)
			_, srv, err := f.State().ServerByID(nil, "s1")
			if err != nil || srv == nil {
				t.Fatalf("server s1: %v", err)
			}
			s := &liveSession{id: "sess-1", userID: "u1", login: "alice", server: srv}
			p := &Proxy{}
			if got := p.revoked(f.State(), s); got != "" {
				t.Fatalf("before the change: %q", got)
			}
			f.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice", Groups: tc.groups}, EnsureGroups: true, Now: time.Now()})
			if got := p.revoked(f.State(), s); got != tc.want {
				t.Fatalf("after groups %v: %q, want %q", tc.groups, got, tc.want)
			}
		})
	}
}
