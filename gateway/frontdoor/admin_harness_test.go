package frontdoor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The admin shell behind a real front door: an x/crypto client signs in
// through the dev IdP as ssh admin@bastion and drives the real shell.

// shellStore gives the admin shell the in-memory store of the front door,
// with the raft operations of a one-node cluster.
type shellStore struct{ *raftstoretest.Store }

func (shellStore) Status() (*raftstore.Status, error) {
	return &raftstore.Status{NodeID: "n1", State: "Leader", LeaderID: "n1", LeaderAddr: "127.0.0.1:8300", Term: 2,
		Members: []raftstore.Member{{ID: "n1", RaftAddr: "127.0.0.1:8300", APIAddr: "127.0.0.1:8443", SSHAddr: "127.0.0.1:2222", Voter: true, Leader: true}}}, nil
}

func (shellStore) RemoveServer(context.Context, string) error { return nil }
func (shellStore) TransferLeadership() error                  { return raftstore.ErrNotLeader }
func (shellStore) Snapshot() error                            { return nil }

type testCluster struct{}

func (testCluster) JoinAddrs() []string { return []string{"127.0.0.1:8443"} }
func (testCluster) CAPin() string       { return "sha256:" + strings.Repeat("0f", 32) }

// testCAKeys makes CA keys sealed with a test KEK, as a node does.
type testCAKeys struct{ kek *ca.KEK }

func (k testCAKeys) NewCAKey(id, alg string) (string, []byte, string, error) {
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, k.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// testRecordings serves recordings from memory by session id.
type testRecordings struct{ files map[string]string }

func (r testRecordings) Open(_ context.Context, s *raftstore.Session) (io.ReadCloser, error) {
	data, ok := r.files[s.ID]
	if !ok {
		return nil, errors.New("no such recording")
	}
	return io.NopCloser(strings.NewReader(data)), nil
}

// lateShell is the front door's admin shell, built once the door's store
// exists.
type lateShell struct {
	sh atomic.Pointer[adminshell.Shell]
}

func (l *lateShell) RunLine(ctx context.Context, a adminshell.Actor, line string, in io.Reader, out, errOut io.Writer) int {
	return l.sh.Load().RunLine(ctx, a, line, in, out, errOut)
}

func (l *lateShell) RunInteractiveResize(ctx context.Context, a adminshell.Actor, rw io.ReadWriter, size adminshell.WindowSize, resize <-chan adminshell.WindowSize) int {
	return l.sh.Load().RunInteractiveResize(ctx, a, rw, size, resize)
}

// The recordings the shell can replay.
const (
	adminCast = `{"version":2,"width":80,"height":24}
[0.1,"o","bob@web-1:~$ uptime\r\n"]
[0.2,"i","uptime\r"]
[0.4,"o"," 12:00:01 up 3 days\r\n"]
`
	recordedID = "sess-cccc3333"
	tamperedID = "sess-dddd4444"
	liveID     = "sess-aaaa1111"
)

// adminDoor is a front door with the real admin shell and two people signed
// in: alice (an admin) and bob (not).
type adminDoor struct {
	*door
	alice, bob *gossh.Client
	bobKey     string
}

func startAdminDoor(t *testing.T) *adminDoor {
	t.Helper()
	idp := startIdP(t, nil)
	late := &lateShell{}
	d := startDoor(t, doorOpts{issuer: idp.issuer, modConf: func(c *Config) { c.Admin = late }})
	kek, err := ca.NewKEK(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	late.sh.Store(adminshell.New(adminshell.Deps{Store: shellStore{d.store}, Cluster: testCluster{}, CAKeys: testCAKeys{kek},
		Recordings: testRecordings{files: map[string]string{recordedID: adminCast, tamperedID: strings.Replace(adminCast, "3 days", "9 days", 1)}},
		NodeID:     "n1"}))
	a := &adminDoor{door: d}
	a.alice, _ = signInAdmin(t, d, "alice", "alice-pw")
	var bobKey gossh.Signer
	a.bob, bobKey = signInAdmin(t, d, "bob", "bob-pw")
	a.bobKey = gossh.FingerprintSHA256(bobKey.PublicKey())
	a.seed(t, kek)
	return a
}

// signInAdmin signs user in as ssh admin@bastion through the device flow,
// binding a new key, and keeps the connection for the test.
func signInAdmin(t *testing.T, d *door, user, password string) (*gossh.Client, gossh.Signer) {
	t.Helper()
	key := newKey(t)
	c := &client{key: key, user: "admin", onPrompt: approveAs(user, password)}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatalf("sign in %s: %v (banner %q)", user, err, c.banner())
	}
	t.Cleanup(func() { conn.Close() })
	return conn, key
}

func (a *adminDoor) apply(t *testing.T, cmd raftstore.Command) {
	t.Helper()
	if _, err := a.store.Apply(context.Background(), cmd); err != nil {
		t.Fatalf("seed %T: %v", cmd, err)
	}
}

// seed gives the cluster what the commands act on: projects, a grant, an
// entitlement, servers, sessions (one live, two recorded) and CAs.
func (a *adminDoor) seed(t *testing.T, kek *ca.KEK) {
	t.Helper()
	now := time.Now().UTC()
	_, bob, _ := a.store.State().UserByLogin(nil, "bob")
	if bob == nil {
		t.Fatal("bob was not provisioned")
	}
	a.apply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Description: "web tier", Settings: raftstore.ProjectSettings{Recording: true}}, Now: now})
	a.apply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now})
	a.apply(t, &raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "restart-nginx", NoPasswd: true,
		Commands: []raftstore.SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}}, Now: now})
	a.apply(t, &raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng", Sudo: []string{"restart-nginx"}}, Now: now})
	for _, s := range []raftstore.Server{
		{ID: "srv-web-1", Project: "web", Name: "web-1", Addr: "10.0.0.11"},
		{ID: "srv-db-1", Project: "db", Name: "db-1", Addr: "10.0.0.21"},
	} {
		pub, _, _, err := testCAKeys{kek}.NewCAKey("hostkey-"+s.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		s.HostKeys = []string{pub}
		a.apply(t, &raftstore.ServerUpsert{Server: s, Now: now})
	}
	for _, id := range []string{liveID, recordedID, tamperedID} {
		a.apply(t, &raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: bob.ID, Login: "bob", ServerID: "srv-web-1",
			Project: "web", Node: "n1", SourceAddr: "203.0.113.5", Start: now.Add(-time.Minute)}})
	}
	sum := sha256.Sum256([]byte(adminCast))
	for _, id := range []string{recordedID, tamperedID} {
		a.apply(t, &raftstore.SessionClose{ID: id, End: now, EndReason: "client closed",
			RecordingSHA256: hex.EncodeToString(sum[:]), RecordingPath: "2026-03-01/" + id + ".cast"})
	}
	for _, r := range []raftstore.CARecord{{ID: "user-web-00000001", Kind: raftstore.CAUser, Project: "web"}, {ID: "host-ca-1", Kind: raftstore.CAHost}} {
		pub, sealed, alg, err := testCAKeys{kek}.NewCAKey(r.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		r.PublicKey, r.SealedKey, r.Algorithm, r.State = pub, sealed, alg, raftstore.CAActive
		a.apply(t, &raftstore.CAUpsert{Record: r, Now: now})
	}
}

// adminEvents are the audit events the shell wrote (they carry the
// admin's id).
func (a *adminDoor) adminEvents(t *testing.T) []*raftstore.AuditEvent {
	t.Helper()
	_, evs, err := a.store.State().Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*raftstore.AuditEvent
	for _, e := range evs {
		if e.Fields["admin_id"] != "" {
			out = append(out, e)
		}
	}
	return out
}

// ptySession is an interactive `ssh -t admin@bastion` over x/crypto: a pty,
// a shell, keys in and the screen out.
type ptySession struct {
	t    *testing.T
	sess *gossh.Session
	in   io.WriteCloser

	mu      sync.Mutex
	changed chan struct{}
	out     strings.Builder
	seen    int
}

// startPty opens a session with a pty that runs command, or the shell when
// command is empty (ssh -t admin@bastion [command]).
func startPty(t *testing.T, c *gossh.Client, command string) *ptySession {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := sess.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{gossh.ECHO: 1}); err != nil {
		t.Fatalf("pty: %v", err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &ptySession{t: t, sess: sess, in: in, changed: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if command != "" {
		err = sess.Start(command)
	} else {
		err = sess.Shell()
	}
	if err != nil {
		t.Fatalf("start %q: %v", command, err)
	}
	return p
}

func (p *ptySession) typ(keys string) {
	p.t.Helper()
	if _, err := p.in.Write([]byte(keys)); err != nil {
		p.t.Fatalf("type %q: %v", keys, err)
	}
}

// expect waits until the screen since the last expectation shows want, and
// returns what it showed up to there.
func (p *ptySession) expect(want string) string {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		all := p.out.String()
		changed := p.changed
		if i := strings.Index(all[p.seen:], want); i >= 0 {
			got := all[p.seen : p.seen+i+len(want)]
			p.seen += i + len(want)
			p.mu.Unlock()
			return got
		}
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			p.t.Fatalf("no %q on the screen since the last check:\n%q", want, all[p.seen:])
		}
	}
}

// wait returns the session's exit status.
func (p *ptySession) wait() int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.sess.Wait() }()
	select {
	case err := <-done:
		var ee *gossh.ExitError
		if errors.As(err, &ee) {
			return ee.ExitStatus()
		}
		if err != nil {
			p.t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(10 * time.Second):
		p.t.Fatal("the admin shell did not end")
		return -1
	}
}
