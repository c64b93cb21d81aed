package access

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// world is a cluster state with every kind of person, grant, server and
// project policy a decision reads.
type world struct {
	t *testing.T
	f *raftstoretest.Store
	// rule is the node's: targets on loopback, as in the e2e tests, but
	// never the node's own 127.0.0.1.
	rule *targetaddr.Rule
	// binding is alice's live device binding.
	binding *raftstore.Binding
	now     time.Time
}

func (w *world) apply(cmds ...raftstore.Command) *raftstore.Result {
	w.t.Helper()
	return w.f.MustApply(w.t, cmds...)
}

func (w *world) eval() *Evaluator {
	return New(w.f.State(), w.rule, func() time.Time { return w.now })
}

// Policy inputs the decision does not read (personal keys, server-name
// rules, session limits, forwarding, recording) are set on web and not on
// db: the table shows they change no cell.
var webPolicy = raftstore.ProjectSettings{SharedLogins: []string{"deploy"}, AllowPersonalKeys: true, ServerNames: []string{"web-*", "meta"},
	MaxSessionDuration: time.Hour, IdleTimeout: time.Minute, AllowLocalForward: true, Recording: true}

func newWorld(t *testing.T) *world {
	t.Helper()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := &world{t: t, f: raftstoretest.New(t), now: now,
		rule: &targetaddr.Rule{AllowLoopback: true, Listeners: targetaddr.ParseListeners("127.0.0.1:2222", "127.0.0.1:8443")}}
	user := func(id, login string, groups ...string) raftstore.Command {
		return &raftstore.UserUpsert{User: raftstore.User{ID: id, Login: login, UnixName: login, Groups: groups}, EnsureGroups: true, Now: now}
	}
	w.apply(
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: webPolicy}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now},
		&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "nginx", Commands: []raftstore.SudoCommand{{Path: "/usr/sbin/nginx"}}}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng", Sudo: []string{"nginx"}}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "Web Admins", Role: raftstore.GrantAdmin}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "db", Group: "dba"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s-web1", Project: "web", Name: "web-1", AltNames: []string{"www"}, Addr: "127.0.0.31", SSHPort: 22,
			Labels: map[string]string{"env": "prod"}}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s-web2", Project: "web", Name: "web-2", Addr: "127.0.0.33", SSHPort: 2222}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s-meta", Project: "web", Name: "meta", Addr: "169.254.169.254", SSHPort: 22}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s-db1", Project: "db", Name: "db-1", Addr: "127.0.0.32", SSHPort: 22}, Now: now},
		user("u-alice", "alice", "eng"),
		user("u-erin", "erin", "eng", "dba", "Web Admins"),
		user("u-bob", "bob", "ops"),
		user("u-carol", "carol", "dba"),
		user("u-dora", "dora", "eng"),
		user("u-gus", "gus", "eng"),
		&raftstore.UserSetStatus{ID: "u-dora", Status: raftstore.UserDisabled, Now: now},
		&raftstore.UserSetStatus{ID: "u-gus", Status: raftstore.UserDeleted, Now: now},
	)
	key, err := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	w.binding = new(raftstore.Binding)
	if err := w.apply(&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: gossh.FingerprintSHA256(key), UserID: "u-alice",
		PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key))), ExpiresAt: now.Add(time.Hour)}, Now: now}).Decode(w.binding); err != nil {
		t.Fatal(err)
	}
	return w
}

// verdict is a cell's answer: "ok", or the exact message the person is
// shown (after "Rampart: ").
func verdict(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

const (
	disabled    = "your account is disabled"
	revoked     = "your key's sign-in was revoked; sign in again"
	noWeb       = "you have no access to this server's project (web)"
	noDB        = "you have no access to this server's project (db)"
	metadata    = "destination address is not allowed: 169.254.169.254 is a metadata service"
	ownAddr     = "destination address is not allowed: 127.0.0.1 is this bastion itself"
	notEnrolled = "not an enrolled server: web-9"
	wrongPort   = "that port is not the server's SSH port: web-1 listens on 22, not 80"
)

// The jump's decision for every person × destination, then every login
// where the destination is allowed. Persons: active in a granted group, in
// two granted groups, in no granted group, granted only another project,
// disabled, deleted, unknown, and signed in with a revoked binding.
// Destinations: a server of each project by name, alt name, on another
// port, at a metadata address, the node's own address, an unenrolled name.
func TestAuthorizeTable(t *testing.T) {
	w := newWorld(t)
	type dest struct {
		host string
		port uint32
	}
	dests := []dest{{"web-1", 22}, {"www", 22}, {"web-2", 2222}, {"db-1", 22}, {"web-1", 80}, {"meta", 22}, {"127.0.0.1", 22}, {"web-9", 22}}
	// Each row: the verdict for each destination, in dests' order.
	cases := []struct {
		name string
		req  Request
		want []string
	}{
		{"alice/eng", Request{UserID: "u-alice"}, []string{"ok", "ok", "ok", noDB, wrongPort, metadata, ownAddr, notEnrolled}},
		{"alice/eng-live-binding", Request{UserID: "u-alice", Binding: w.binding.Fingerprint, BindingIndex: w.binding.CreateIndex},
			[]string{"ok", "ok", "ok", noDB, wrongPort, metadata, ownAddr, notEnrolled}},
		{"alice/binding-revoked", Request{UserID: "u-alice", Binding: "SHA256:gone"},
			[]string{revoked, revoked, revoked, revoked, revoked, revoked, revoked, revoked}},
		{"alice/binding-made-anew", Request{UserID: "u-alice", Binding: w.binding.Fingerprint, BindingIndex: w.binding.CreateIndex + 1},
			[]string{revoked, revoked, revoked, revoked, revoked, revoked, revoked, revoked}},
		{"erin/eng-dba-admins", Request{UserID: "u-erin"}, []string{"ok", "ok", "ok", "ok", wrongPort, metadata, ownAddr, notEnrolled}},
		{"bob/ungranted-group", Request{UserID: "u-bob"}, []string{noWeb, noWeb, noWeb, noDB, wrongPort, metadata, ownAddr, notEnrolled}},
		{"carol/other-project", Request{UserID: "u-carol"}, []string{noWeb, noWeb, noWeb, "ok", wrongPort, metadata, ownAddr, notEnrolled}},
		// The destination is checked before the person's status.
		{"dora/disabled", Request{UserID: "u-dora"}, []string{disabled, disabled, disabled, disabled, wrongPort, metadata, ownAddr, notEnrolled}},
		{"gus/deleted", Request{UserID: "u-gus"}, []string{disabled, disabled, disabled, disabled, wrongPort, metadata, ownAddr, notEnrolled}},
		{"missing", Request{UserID: "u-nobody"}, []string{disabled, disabled, disabled, disabled, disabled, disabled, disabled, disabled}},
	}
	e := w.eval()
	for _, tc := range cases {
		for i, d := range dests {
			req := tc.req
			req.Host, req.Port = d.host, d.port
			t.Run(fmt.Sprintf("%s/%s:%d", tc.name, d.host, d.port), func(t *testing.T) {
				dec, who, err := e.Authorize(req)
				if got := verdict(err); got != tc.want[i] {
					t.Fatalf("got %q, want %q", got, tc.want[i])
				}
				if tc.req.UserID == "u-nobody" {
					if who != nil {
						t.Fatalf("refusal about %+v for an unknown person", who)
					}
				} else if who == nil || who.ID != tc.req.UserID {
					t.Fatalf("refusal about %+v, want %s", who, tc.req.UserID)
				}
				if err == nil && (dec.User.ID != tc.req.UserID || dec.Server == nil || dec.IP == nil || dec.Project.Name != dec.Server.Project || len(dec.Grants) == 0) {
					t.Fatalf("decision %+v", dec)
				}
			})
		}
	}

	// Logins, where the destination is allowed: the person's own unix
	// name, another person's, a shared login, root; under web's policy
	// (shares deploy), db's (shares nothing), and web's after it stopped
	// sharing.
	notYours := func(login, own, project string) string {
		return fmt.Sprintf("login not permitted: %q is not your account (%s) and project %s does not share it", login, own, project)
	}
	logins := []struct {
		name, user, host string
		want             map[string]string
	}{
		{"alice/web", "u-alice", "web-1", map[string]string{"alice": "ok", "deploy": "ok", "bob": notYours("bob", "alice", "web"), "root": notYours("root", "alice", "web")}},
		{"erin/web", "u-erin", "web-1", map[string]string{"erin": "ok", "deploy": "ok", "alice": notYours("alice", "erin", "web"), "root": notYours("root", "erin", "web")}},
		{"erin/db", "u-erin", "db-1", map[string]string{"erin": "ok", "deploy": notYours("deploy", "erin", "db"), "alice": notYours("alice", "erin", "db"), "root": notYours("root", "erin", "db")}},
		{"carol/db", "u-carol", "db-1", map[string]string{"carol": "ok", "deploy": notYours("deploy", "carol", "db"), "root": notYours("root", "carol", "db")}},
	}
	check := func(t *testing.T, e *Evaluator, user, host, login, want string) {
		t.Helper()
		dec, _, err := e.Authorize(Request{UserID: user, Host: host, Port: 22})
		if err != nil {
			t.Fatal(err)
		}
		if got := verdict(dec.Login(dec.User, login)); got != want {
			t.Fatalf("login %s: got %q, want %q", login, got, want)
		}
	}
	for _, tc := range logins {
		for _, login := range slices.Sorted(maps.Keys(tc.want)) {
			t.Run("login/"+tc.name+"/"+login, func(t *testing.T) { check(t, e, tc.user, tc.host, login, tc.want[login]) })
		}
	}
	unshared := webPolicy
	unshared.SharedLogins = nil
	w.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: unshared}, Now: w.now})
	t.Run("login/alice/web-shares-nothing/deploy", func(t *testing.T) {
		check(t, w.eval(), "u-alice", "web-1", "deploy", notYours("deploy", "alice", "web"))
	})
	t.Run("login/alice/web-shares-nothing/alice", func(t *testing.T) { check(t, w.eval(), "u-alice", "web-1", "alice", "ok") })

	// A shared login that is a person's unix name (state from before the
	// cluster refused it) opens nobody's account.
	t.Run("login/legacy-shared-login-is-a-person", func(t *testing.T) {
		st := w.f.State()
		_, alice, _ := st.UserByID(nil, "u-alice")
		legacy := &raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"bob", "deploy"}}}
		want := `login not permitted: "bob" is shared by project web but is also a person's account`
		if got := verdict(CheckLogin(st, legacy, alice, "bob")); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if err := CheckLogin(st, legacy, alice, "deploy"); err != nil {
			t.Fatalf("deploy: %v", err)
		}
	})
}

// The refusals keep their identity for errors.Is (the jump's errors are
// these).
func TestAuthorizeErrorIdentity(t *testing.T) {
	w := newWorld(t)
	e := w.eval()
	for _, tc := range []struct {
		req  Request
		want error
	}{
		{Request{UserID: "u-dora", Host: "web-1", Port: 22}, ErrUserInactive},
		{Request{UserID: "u-alice", Binding: "SHA256:gone", Host: "web-1", Port: 22}, ErrBindingRevoked},
		{Request{UserID: "u-bob", Host: "web-1", Port: 22}, ErrNotInProject},
		{Request{UserID: "u-alice", Host: "meta", Port: 22}, ErrForbiddenAddr},
		{Request{UserID: "u-alice", Host: "web-1", Port: 80}, ErrWrongPort},
		{Request{UserID: "u-alice", Host: "web-9", Port: 22}, ErrNotEnrolled},
	} {
		if _, _, err := e.Authorize(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.req, err, tc.want)
		}
	}
	// A node without a jump dials nothing.
	if _, _, err := New(w.f.State(), nil, nil).Authorize(Request{UserID: "u-alice", Host: "web-1", Port: 22}); !errors.Is(err, ErrForbiddenAddr) {
		t.Errorf("no jump: %v", err)
	}
}
