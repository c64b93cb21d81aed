package jump

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// waitEnv is project web granted to eng, its server web-1 (s1, enrolled by
// an agent) and hand-registered web-2 (s2), and alice in eng; the agent of
// web-1 has applied the state of the index just before alice's creation.
type waitEnv struct {
	store  *raftstoretest.Store
	before uint64 // applied by web-1's agent
}

func newWaitEnv(t *testing.T) *waitEnv {
	t.Helper()
	e := &waitEnv{store: raftstoretest.New(t)}
	now := time.Now()
	e.before = e.store.MustApply(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "127.0.0.31", SSHPort: 22, EnrollMethod: raftstore.EnrollToken}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "web", Name: "web-2", Addr: "127.0.0.32", SSHPort: 22, EnrollMethod: raftstore.EnrollManual}, Now: now},
	).Index
	e.store.MustApply(t, &raftstore.AgentAppliedSet{ServerID: "s1", Index: e.before}, &raftstore.AgentAppliedSet{ServerID: "s2", Index: e.before})
	e.store.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice", Groups: []string{"eng"}}, EnsureGroups: true, Now: now})
	return e
}

// conn is a jump of alice to server id, by a proxy waiting up to wait.
func (e *waitEnv) conn(t *testing.T, id string, wait time.Duration) *conn {
	t.Helper()
	st := e.store.State()
	_, user, err := st.UserByID(nil, "u1")
	if err != nil || user == nil {
		t.Fatalf("alice: %v", err)
	}
	_, srv, err := st.ServerByID(nil, id)
	if err != nil || srv == nil {
		t.Fatalf("server %s: %v", id, err)
	}
	_, project, err := st.ProjectByName(nil, srv.Project)
	if err != nil || project == nil {
		t.Fatalf("project %s: %v", srv.Project, err)
	}
	p := New(Config{NodeID: "n1", AgentWait: wait}, e.store, nil, nil, nil, slog.New(slog.DiscardHandler))
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	ident := Identity{UserID: user.ID, Remote: addr, Local: addr}
	acc := &access{project: project}
	return &conn{p: p, s: p.newSession(ident, user, srv, acc), id: ident, user: user, srv: srv, acc: acc}
}

func TestAwaitAgent(t *testing.T) {
	type told struct {
		mu    sync.Mutex
		lines []string
	}
	for _, tc := range []struct {
		name   string
		server string
		login  string
		wait   time.Duration
		// before runs first; during, once the person has been told.
		before, during func(t *testing.T, e *waitEnv)
		wantTold       bool
		wantErr        error
	}{
		{name: "ok/agent-has-the-account", server: "s1", login: "alice", wait: time.Minute,
			before: func(t *testing.T, e *waitEnv) { e.catchUp(t) }},
		{name: "ok/waits-for-the-agent", server: "s1", login: "alice", wait: time.Minute, wantTold: true,
			during: func(t *testing.T, e *waitEnv) { e.catchUp(t) }},
		{name: "fail/agent-never-catches-up", server: "s1", login: "alice", wait: 300 * time.Millisecond, wantTold: true, wantErr: ErrAgentBehind},
		{name: "ok/unrelated-change-does-not-wait", server: "s1", login: "alice", wait: 300 * time.Millisecond,
			before: func(t *testing.T, e *waitEnv) {
				e.catchUp(t)
				// Joining a group web does not grant, and a new email,
				// change nothing on web-1: its agent is not woken for them.
				e.store.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", Email: "a@x", UnixName: "alice", Groups: []string{"eng", "sales"}}, EnsureGroups: true, Now: time.Now()})
			}},
		{name: "fail/re-enabled-waits-again", server: "s1", login: "alice", wait: 300 * time.Millisecond, wantTold: true, wantErr: ErrAgentBehind,
			before: func(t *testing.T, e *waitEnv) {
				e.catchUp(t)
				e.store.MustApply(t, &raftstore.UserSetStatus{ID: "u1", Status: raftstore.UserDisabled, Now: time.Now()},
					&raftstore.UserSetStatus{ID: "u1", Status: raftstore.UserActive, Now: time.Now()})
			}},
		{name: "ok/server-without-agent", server: "s2", login: "alice", wait: time.Minute},
		{name: "ok/shared-login", server: "s1", login: "deploy", wait: time.Minute},
		{name: "ok/wait-off", server: "s1", login: "alice", wait: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newWaitEnv(t)
			if tc.before != nil {
				tc.before(t, e)
			}
			c := e.conn(t, tc.server, tc.wait)
			var got told
			notify := func(msg string) {
				got.mu.Lock()
				got.lines = append(got.lines, msg)
				got.mu.Unlock()
				if tc.during != nil {
					go tc.during(t, e)
				}
			}
			start := time.Now()
			err := c.awaitAgent(context.Background(), tc.login, notify)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && err.Error() != "web-1's agent has not applied your account after 300ms; ask an administrator to check rampart-agent on web-1" {
				t.Errorf("refusal %q", err)
			}
			if tc.wantErr == nil && time.Since(start) > 10*time.Second {
				t.Errorf("returned after %s", time.Since(start))
			}
			got.mu.Lock()
			defer got.mu.Unlock()
			switch {
			case tc.wantTold && (len(got.lines) != 1 || got.lines[0] != "waiting for web-1 to set up your account..."):
				t.Errorf("told %q, want one waiting line", got.lines)
			case !tc.wantTold && len(got.lines) != 0:
				t.Errorf("told %q, want nothing", got.lines)
			}
		})
	}
}

// catchUp has web-1's agent report the newest index.
func (e *waitEnv) catchUp(t *testing.T) {
	t.Helper()
	e.store.MustApply(t, &raftstore.AgentAppliedSet{ServerID: "s1", Index: e.store.FSM().AppliedIndex()})
}

// fakeMinter gives the inner server a host key; nothing else is used by a
// refused login.
type fakeMinter struct{ Minter }

func (fakeMinter) InnerHostSigners(*raftstore.Server, string) ([]gossh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := gossh.NewSignerFromKey(priv)
	return []gossh.Signer{s}, err
}

type nopAuditor struct{}

func (nopAuditor) Record(string, string, map[string]string) {}

// A refused login is shown once, however many methods the client tries.
func TestRefusalShownOnce(t *testing.T) {
	e := newWaitEnv(t)
	c := e.conn(t, "s1", -1)
	c.p.mint, c.s.audit = fakeMinter{}, nopAuditor{}
	// A real socket: net.Pipe is unbuffered, and both sides send their
	// version line first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if server, err := ln.Accept(); err == nil {
			c.serve(context.Background(), server)
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	var banners []string
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := gossh.NewSignerFromKey(priv)
	_, _, _, err = gossh.NewClientConn(client, "web-1:22", &gossh.ClientConfig{
		User: "root",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(key), gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			return nil, nil
		})},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		BannerCallback:  func(m string) error { banners = append(banners, m); return nil },
	})
	client.Close()
	<-served
	if err == nil {
		t.Fatal("root was let in")
	}
	if len(banners) != 1 || !strings.Contains(banners[0], "login not permitted") {
		t.Fatalf("banners %q, want one refusal", banners)
	}
	// Counted once too, under its reason.
	d := c.p.cfg.Metrics.Decisions
	if got := testutil.ToFloat64(d.WithLabelValues("refused", "login_denied")); got != 1 {
		t.Fatalf(`rampart_jump_decisions_total{outcome="refused",reason="login_denied"} = %v, want 1`, got)
	}
	if got := testutil.CollectAndCount(d); got != 1 {
		t.Fatalf("rampart_jump_decisions_total has %d series, want 1", got)
	}
}
