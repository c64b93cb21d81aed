package adminshell

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// fakeStore is the shared in-memory store with the membership of a
// three-node cluster; the store itself is proven in raftstore and e2e.
type fakeStore struct {
	*raftstoretest.Store

	mu        sync.Mutex
	notLeader bool // TransferLeadership fails with ErrNotLeader
	status    raftstore.Status
	removed   []string
	snapshots int
	transfers int
}

func newFakeStore(t testing.TB) *fakeStore {
	return &fakeStore{Store: raftstoretest.New(t), status: raftstore.Status{
		NodeID: "n1", State: "Leader", LeaderID: "n1", LeaderAddr: "127.0.0.1:8300", Term: 4,
		LastIndex: 90, CommitIndex: 90, AppliedIndex: 90, StateDigest: strings.Repeat("ab", 32),
		Members: []raftstore.Member{
			{ID: "n1", RaftAddr: "127.0.0.1:8300", APIAddr: "127.0.0.1:8443", SSHAddr: "127.0.0.1:2222", Voter: true, Leader: true},
			{ID: "n2", RaftAddr: "127.0.0.2:8300", APIAddr: "127.0.0.2:8443", SSHAddr: "127.0.0.2:2222", Voter: true},
			{ID: "n3", RaftAddr: "127.0.0.3:8300", APIAddr: "127.0.0.3:8443", SSHAddr: "127.0.0.3:2222", Voter: true},
		},
	}}
}

// failAudit makes every audit append fail (no leader) while on.
func (s *fakeStore) failAudit(on bool) {
	if !on {
		s.RefuseApply(nil)
		return
	}
	s.RefuseApply(func(c raftstore.Command) error {
		if _, ok := c.(*raftstore.AuditAppend); ok {
			return raftstore.ErrNoLeader
		}
		return nil
	})
}

func (s *fakeStore) Status() (*raftstore.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Members = append([]raftstore.Member(nil), s.status.Members...)
	return &st, nil
}

func (s *fakeStore) RemoveServer(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, id)
	for i, m := range s.status.Members {
		if m.ID == id {
			s.status.Members = append(s.status.Members[:i], s.status.Members[i+1:]...)
			break
		}
	}
	return nil
}

func (s *fakeStore) TransferLeadership() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notLeader {
		return raftstore.ErrNotLeader
	}
	s.transfers++
	return nil
}

func (s *fakeStore) Snapshot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots++
	return nil
}

type fakeCluster struct{}

func (fakeCluster) JoinAddrs() []string { return []string{"127.0.0.1:8443", "127.0.0.2:8443"} }
func (fakeCluster) CAPin() string       { return "sha256:" + strings.Repeat("0f", 32) }

// harness is a shell over a seeded fake store with a fixed clock.
type harness struct {
	t     *testing.T
	store *fakeStore
	sh    *Shell
	now   time.Time
	actor Actor
	// bobKey is the fingerprint of bob's bound key.
	bobKey string
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, store: newFakeStore(t), now: testNow,
		actor: Actor{Login: "alice", UserID: "sub-alice", Source: "198.51.100.7:50022"}}
	h.sh = New(Deps{Store: h.store, Cluster: fakeCluster{}, NodeID: "n1", Now: func() time.Time { return h.now }})
	h.seed()
	return h
}

// apply seeds the store directly, without the shell (and so without audit).
func (h *harness) apply(cmd raftstore.Command) {
	h.t.Helper()
	if _, err := h.store.Apply(context.Background(), cmd); err != nil {
		h.t.Fatalf("seed %T: %v", cmd, err)
	}
}

func hostKey(t testing.TB) (string, gossh.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))), k
}

func (h *harness) seed() {
	now := h.now.Add(-time.Hour)
	for _, u := range []raftstore.User{
		{ID: "sub-alice", Login: "alice", Email: "alice@example.com", UnixName: "alice", Groups: []string{"eng", "rampart-admins"}},
		{ID: "sub-bob", Login: "bob", Email: "bob@example.com", UnixName: "bob", Groups: []string{"eng"}},
		{ID: "sub-carol", Login: "carol", UnixName: "carol", Groups: []string{"ops"}},
	} {
		h.apply(&raftstore.UserUpsert{User: u, EnsureGroups: true, Now: now})
	}
	h.apply(&raftstore.UserSetStatus{ID: "sub-carol", Status: raftstore.UserDisabled, Now: now})
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Description: "web tier",
		Settings: raftstore.ProjectSettings{Recording: true, AllowLocalForward: true}}, Now: now})
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now})
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "empty"}, Now: now})
	h.apply(&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "restart-nginx", NoPasswd: true,
		Commands: []raftstore.SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}}, Now: now})
	h.apply(&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "unused",
		Commands: []raftstore.SudoCommand{{Path: "/usr/bin/uptime", Args: []string{}}}}, Now: now})
	h.apply(&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng", Sudo: []string{"restart-nginx"}}, Now: now})
	h.apply(&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "db", Group: "ops", Role: raftstore.GrantAdmin}, Now: now})
	for _, s := range []raftstore.Server{
		{ID: "srv-web-1", Project: "web", Name: "web-1", Addr: "10.0.0.11", Labels: map[string]string{"env": "prod", "role": "web"}, EnrollMethod: raftstore.EnrollToken, LastSeen: h.now.Add(-2 * time.Minute)},
		{ID: "srv-web-2", Project: "web", Name: "web-2", Addr: "10.0.0.12", Labels: map[string]string{"env": "staging"}},
		{ID: "srv-db-1", Project: "db", Name: "db-1", AltNames: []string{"postgres"}, Addr: "10.0.0.21", Labels: map[string]string{"env": "prod"}},
	} {
		k, _ := hostKey(h.t)
		s.HostKeys = []string{k}
		h.apply(&raftstore.ServerUpsert{Server: s, Now: now})
	}
	_, bobKey := hostKey(h.t)
	h.bobKey = gossh.FingerprintSHA256(bobKey)
	h.apply(&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: h.bobKey, UserID: "sub-bob",
		PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(bobKey))), ClientVersion: "SSH-2.0-OpenSSH_9.6",
		SourceAddr: "203.0.113.5", CreatedAt: now, ExpiresAt: h.now.Add(7 * time.Hour)}, Now: now})
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-aaaa1111", UserID: "sub-bob", Login: "bob",
		ServerID: "srv-web-1", Project: "web", Node: "n1", SourceAddr: "203.0.113.5", Start: h.now.Add(-10 * time.Minute)}})
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-bbbb2222", UserID: "sub-alice", Login: "alice",
		ServerID: "srv-db-1", Project: "db", Node: "n2", Start: h.now.Add(-50 * time.Minute)}})
	h.apply(&raftstore.SessionClose{ID: "sess-bbbb2222", End: h.now.Add(-40 * time.Minute), BytesIn: 100, BytesOut: 2000, EndReason: "client closed"})
	h.apply(&raftstore.TokenCreate{Token: raftstore.Token{Hash: strings.Repeat("1a", 32), Kind: raftstore.TokenEnroll, Project: "web",
		UsesLeft: 3, ExpiresAt: h.now.Add(time.Hour), CreatedBy: "alice", Description: "web fleet"}, Now: now})
	h.apply(&raftstore.TokenCreate{Token: raftstore.Token{Hash: strings.Repeat("2b", 32), Kind: raftstore.TokenJoin,
		UsesLeft: raftstore.UnlimitedUses, CreatedBy: "bootstrap"}, Now: now})
	h.apply(&raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "bootstrap", Name: "bootstrap",
		Hash: strings.Repeat("3c", 32), Role: raftstore.ServiceRoleAdmin, CreatedBy: "bootstrap"}, Now: now})
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "127.0.0.1:8300"}, Now: now})
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:8300"}, Now: now})
	h.apply(&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{
		{Time: now, Type: "login", Actor: "bob", Fields: map[string]string{"method": "device-flow"}},
		{Time: now.Add(time.Minute), Type: "session.open", Actor: "bob", Fields: map[string]string{"server": "web-1", "server_id": "srv-web-1"}},
	}})
}

// result is what a one-shot command left.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runInput(nil, args...)
}

func (h *harness) runInput(stdin *strings.Reader, args ...string) result {
	h.t.Helper()
	var out, errOut bytes.Buffer
	var code int
	if stdin != nil {
		code = h.sh.RunCommandInput(context.Background(), h.actor, args, stdin, &out, &errOut)
	} else {
		code = h.sh.RunCommand(context.Background(), h.actor, args, &out, &errOut)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// mustRun runs a command that must succeed.
func (h *harness) mustRun(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.code != ExitOK {
		h.t.Fatalf("%s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// auditEvents is the whole audit log.
func (h *harness) auditEvents() []*raftstore.AuditEvent {
	h.t.Helper()
	_, evs, err := h.store.State().Audit(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// lastAudit is the newest audit event.
func (h *harness) lastAudit() *raftstore.AuditEvent {
	h.t.Helper()
	evs := h.auditEvents()
	if len(evs) == 0 {
		h.t.Fatal("no audit events")
	}
	return evs[len(evs)-1]
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output is not the JSON expected (%v):\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
	return v
}

// The node passes its *raftstore.Store as it is.
var _ Store = (*raftstore.Store)(nil)
