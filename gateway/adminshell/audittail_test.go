package adminshell

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/raftstore"
)

// appendAudit writes an event as another node would.
func (h *harness) appendAudit(typ, actor string, fields map[string]string) {
	h.t.Helper()
	h.apply(&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: h.now, Type: typ, Actor: actor, Fields: fields}}})
}

func TestAuditTail(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 30; i++ {
		h.appendAudit("session.open", "bob", map[string]string{"server": "web-1", "n": string(rune('a' + i%26))})
	}
	out := h.mustRun("audit", "tail")
	if n := strings.Count(out, "\n"); n != 20 {
		t.Errorf("audit tail printed %d lines, want 20:\n%s", n, out)
	}
	if !strings.HasPrefix(out, "13 ") || !strings.Contains(out, "32 ") || !strings.Contains(out, "session.open") || !strings.Contains(out, "server=web-1") {
		t.Errorf("audit tail:\n%s", out)
	}
	if got := h.mustRun("audit", "tail", "-n", "2", "-q"); got != "31\n32\n" {
		t.Errorf("audit tail -n 2 -q = %q", got)
	}
	// Filters pick the newest matching events, wherever they are.
	if got := h.mustRun("audit", "tail", "--type", "login", "-q"); got != "1\n" {
		t.Errorf("audit tail --type login -q = %q", got)
	}
	// --json is one event per line, as export writes them.
	lines := strings.Split(strings.TrimSpace(h.mustRun("audit", "tail", "-n", "3", "--json")), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	for i, l := range lines {
		var a auditView
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.Seq != uint64(30+i) || a.Hash == "" {
			t.Errorf("line %d %q: %+v %v", i, l, a, err)
		}
	}
	if r := h.run("audit", "tail", "-n", "-1"); r.code != ExitUsage {
		t.Errorf("negative -n: %s", r)
	}
}

// syncBuf is a buffer a command writes while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, b *syncBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One-shot `audit tail -f` follows until a Ctrl-C byte arrives on the
// session's input (ssh -t), or until the session ends.
func TestAuditTailFollowOneShot(t *testing.T) {
	h := newHarness(t)
	inR, inW := io.Pipe()
	defer inW.Close()
	var out syncBuf
	done := make(chan int, 1)
	go func() {
		done <- h.sh.RunCommandInput(context.Background(), h.actor, []string{"audit", "tail", "-f", "--json"}, inR, &out, io.Discard)
	}()
	waitOutput(t, &out, `"type":"session.open"`)
	h.appendAudit("user.disable", "carol", map[string]string{"user": "bob"})
	waitOutput(t, &out, `"type":"user.disable"`)
	h.appendAudit("login", "dave", nil)
	waitOutput(t, &out, `"actor":"dave"`)
	if _, err := inW.Write([]byte("\x03")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ctrl-C did not end audit tail -f")
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Errorf("%d lines:\n%s", n, out.String())
	}

	// The session ends (its context is cancelled): so does the command.
	ctx, cancel := context.WithCancel(context.Background())
	var out2 syncBuf
	go func() {
		done <- h.sh.RunCommand(ctx, h.actor, []string{"audit", "tail", "-f", "-n", "1", "--type", "session"}, &out2, io.Discard)
	}()
	waitOutput(t, &out2, "session.open")
	h.appendAudit("login", "erin", nil)
	h.appendAudit("session.close", "erin", nil)
	waitOutput(t, &out2, "session.close")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the session did not end audit tail -f")
	}
	if strings.Contains(out2.String(), "login") {
		t.Errorf("--type session printed a login:\n%s", out2.String())
	}
}

func TestInteractiveAuditTailFollow(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect(Prompt)
	s.typ("audit tail -f -n 1\r")
	s.expect("session.open")
	s.expect("Ctrl-C stops")
	h.appendAudit("project.create", "carol", map[string]string{"project": "api"})
	s.expect("project=api")
	s.typ("\x03")
	s.expect(Prompt)
	out := s.line("whoami")
	if !strings.Contains(out, "sub-alice") {
		t.Errorf("after Ctrl-C:\n%q", out)
	}
	s.typ("exit\r")
	if code := s.exit(); code != ExitOK {
		t.Errorf("exit %d", code)
	}
}

// An admin disabled while in the shell: a running tail stops and the session
// closes at the prompt, whichever node made the change.
func TestInteractiveSessionEndsWhenAdminDisabled(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect(Prompt)
	s.typ("audit tail -f\r")
	s.expect("Ctrl-C stops")
	h.apply(&raftstore.UserSetStatus{ID: "sub-alice", Status: raftstore.UserDisabled, Now: h.now})
	s.expect("your account is no longer active; the admin shell is closed.")
	if code := s.exit(); code != ExitError {
		t.Errorf("exit %d", code)
	}

	// Idle at the prompt.
	h2 := newHarness(t)
	s2 := startTerm(t, h2)
	s2.expect(Prompt)
	h2.apply(&raftstore.UserSetStatus{ID: "sub-alice", Status: raftstore.UserDeleted, Now: h2.now})
	s2.expect("the admin shell is closed")
	if code := s2.exit(); code != ExitError {
		t.Errorf("exit %d", code)
	}
}

// users disable changes the users table, which every node's jump proxy
// watches (gateway/jump's watchedTables) to end the user's live hops: the
// command must wake such a watcher.
func TestUsersDisableWakesSessionWatchers(t *testing.T) {
	h := newHarness(t)
	st := h.store.State()
	start := st.MaxIndexWatch(nil, "users")
	woke := make(chan uint64, 1)
	go func() {
		idx, _ := raftstore.BlockingQuery(context.Background(), h.store, start, time.Minute, func(ws memdb.WatchSet, s *raftstore.State) (uint64, error) {
			return s.MaxIndexWatch(ws, "users", "grants", "projects", "servers", "sessions"), nil
		})
		woke <- idx
	}()
	out := h.mustRun("users", "disable", "bob")
	if !strings.Contains(out, "every node ends their live sessions") {
		t.Errorf("disable output %q", out)
	}
	select {
	case idx := <-woke:
		if idx <= start {
			t.Errorf("watcher woke at index %d, not after %d", idx, start)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("users disable did not wake a users-table watcher within 2s")
	}
	if help := h.mustRun("users", "disable", "--help"); !strings.Contains(help, "their live sessions end") || !strings.Contains(help, "every node") {
		t.Errorf("users disable --help:\n%s", help)
	}
}
