package control

import (
	"context"
	"crypto/ed25519"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// newMemStore is the replicated store in memory, its raft configuration two
// nodes: n1 (this one) and n2.
func newMemStore(t testing.TB) *raftstoretest.Store {
	t.Helper()
	return raftstoretest.New(t, raftstoretest.WithMembers(
		raftstore.Member{ID: "n1", RaftAddr: "127.0.0.1:8300"}, raftstore.Member{ID: "n2", RaftAddr: "127.0.0.2:8300"}))
}

// event is one audit event the recorder was given.
type event struct {
	Type, Actor string
	Fields      map[string]string
}

// recorder is an Auditor that keeps what it is given, or refuses it.
type recorder struct {
	mu     sync.Mutex
	events []event
	fail   error
}

func (r *recorder) Record(ctx context.Context, typ, actor string, fields map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if err := ctx.Err(); err != nil {
		return err // as the store's Apply does with a context that has ended
	}
	r.events = append(r.events, event{Type: typ, Actor: actor, Fields: maps.Clone(fields)})
	return nil
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

type fixedCluster struct{}

func (fixedCluster) JoinAddrs() []string { return []string{"127.0.0.1:8443"} }
func (fixedCluster) CAPin() string       { return "sha256:" + strings.Repeat("0f", 32) }

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testActor is the admin every test change is made by.
var testActor = Actor{Name: "alice", Fields: map[string]string{"source": "198.51.100.7:50022"}}

type harness struct {
	t     *testing.T
	store *raftstoretest.Store
	audit *recorder
	svc   *Service
	// bobKey is the fingerprint of bob's bound key.
	bobKey string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, store: newMemStore(t), audit: &recorder{}}
	h.svc = New(Deps{Store: h.store, Auditor: h.audit, Members: h.store, Cluster: fixedCluster{},
		Now: func() time.Time { return testNow }})
	h.seed()
	return h
}

func (h *harness) apply(cmd raftstore.Command) {
	h.t.Helper()
	if _, err := h.store.Apply(context.Background(), cmd); err != nil {
		h.t.Fatalf("seed %T: %v", cmd, err)
	}
}

func (h *harness) seed() {
	now := testNow.Add(-time.Hour)
	for _, u := range []raftstore.User{
		{ID: "sub-bob", Login: "bob", UnixName: "bob", Groups: []string{"eng"}},
		{ID: "sub-carol", Login: "carol", UnixName: "carol", Groups: []string{"ops"}},
		{ID: "sub-dave", Login: "dave", UnixName: "dave"},
	} {
		h.apply(&raftstore.UserUpsert{User: u, EnsureGroups: true, Now: now})
	}
	h.apply(&raftstore.UserSetStatus{ID: "sub-carol", Status: raftstore.UserDisabled, Now: now})
	h.apply(&raftstore.UserSetStatus{ID: "sub-dave", Status: raftstore.UserDeleted, Now: now})
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Description: "web tier", Settings: raftstore.DefaultProjectSettings()}, Now: now})
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "empty"}, Now: now})
	h.apply(&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "restart-nginx",
		Commands: []raftstore.SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}}, Now: now})
	h.apply(&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "unused",
		Commands: []raftstore.SudoCommand{{Path: "/usr/bin/uptime"}}}, Now: now})
	h.apply(&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng", Sudo: []string{"restart-nginx"}}, Now: now})
	h.apply(&raftstore.ServerUpsert{Server: raftstore.Server{ID: "srv-web-1", Project: "web", Name: "web-1", Addr: "10.0.0.11",
		Labels: map[string]string{"env": "prod"}}, Now: now})
	pub, err := gossh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		h.t.Fatal(err)
	}
	h.bobKey = gossh.FingerprintSHA256(pub)
	h.apply(&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: h.bobKey, UserID: "sub-bob",
		PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
		CreatedAt: now, ExpiresAt: testNow.Add(time.Hour)}, Now: now})
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-live", UserID: "sub-bob", Login: "bob", ServerID: "srv-web-1",
		Project: "web", Node: "n1", Start: testNow.Add(-10 * time.Minute)}})
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-done", UserID: "sub-bob", Login: "bob", ServerID: "srv-web-1",
		Project: "web", Node: "n1", Start: testNow.Add(-50 * time.Minute)}})
	h.apply(&raftstore.SessionClose{ID: "sess-done", End: testNow.Add(-40 * time.Minute), EndReason: "client closed"})
	h.apply(&raftstore.TokenCreate{Token: raftstore.Token{Hash: strings.Repeat("1a", 32), Kind: raftstore.TokenEnroll, Project: "web",
		UsesLeft: raftstore.UnlimitedUses, CreatedBy: "alice"}, Now: now})
	h.apply(&raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "st-ci", Name: "ci", Hash: strings.Repeat("3c", 32),
		Role: raftstore.ServiceRoleAdmin, CreatedBy: "bootstrap"}, Now: now})
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n3", RaftAddr: "127.0.0.3:8300"}, Now: now})
}

var errRefused = errors.New("refused by the test")
