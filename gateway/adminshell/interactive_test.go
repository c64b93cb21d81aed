package adminshell

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// termSession drives RunInteractive over a pair of pipes, as an SSH channel
// with a pty would.
type termSession struct {
	t      *testing.T
	keys   *io.PipeWriter
	resize chan WindowSize
	done   chan int

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every write
	out     strings.Builder
	seen    int // how far expect has consumed out
}

func startTerm(t *testing.T, h *harness) *termSession {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &termSession{t: t, keys: inW, resize: make(chan WindowSize), done: make(chan int, 1), changed: make(chan struct{})}
	rw := struct {
		io.Reader
		io.Writer
	}{inR, outW}
	go func() {
		code := h.sh.RunInteractiveResize(context.Background(), h.actor, rw, WindowSize{120, 40}, s.resize)
		outW.Close()
		s.done <- code
	}()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := outR.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		<-copied
	})
	return s
}

// typ sends keys as the admin types them.
func (s *termSession) typ(keys string) {
	s.t.Helper()
	if _, err := s.keys.Write([]byte(keys)); err != nil {
		s.t.Fatalf("type %q: %v", keys, err)
	}
}

// expect waits until the output since the last expectation holds want, and
// returns that output.
func (s *termSession) expect(want string) string {
	s.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		all := s.out.String()
		i := strings.Index(all[s.seen:], want)
		changed := s.changed
		if i >= 0 {
			got := all[s.seen : s.seen+i+len(want)]
			s.seen += i + len(want)
			s.mu.Unlock()
			return got
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			s.t.Fatalf("no %q in the output since the last check:\n%q", want, all[s.seen:])
		}
	}
}

// line types a line and returns its output, up to the next prompt. The
// previous prompt must have been consumed.
func (s *termSession) line(l string) string {
	s.t.Helper()
	s.typ(l + "\r")
	s.expect(l + "\r\n")
	return s.expect(Prompt)
}

// exit waits for the session to end and returns its status.
func (s *termSession) exit() int {
	s.t.Helper()
	select {
	case code := <-s.done:
		return code
	case <-time.After(5 * time.Second):
		s.t.Fatal("the shell did not end")
		return -1
	}
}

func TestInteractiveCommandsAndExit(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect("Signed in as alice")
	s.expect(Prompt)
	out := s.line("servers ls --project web")
	if !strings.Contains(out, "web-1") || !strings.Contains(out, "web-2") || strings.Contains(out, "db-1") {
		t.Errorf("servers ls:\n%q", out)
	}
	if !strings.Contains(out, "\r\n") {
		t.Errorf("output lines do not end in CRLF:\n%q", out)
	}
	// Quoting follows the shell; errors go to the terminal and the shell goes on.
	s.typ(`projects create api --description 'the API tier'` + "\r")
	s.expect("project api created")
	if p := wantProject(t, h, "api"); p.Description != "the API tier" {
		t.Errorf("description %q", p.Description)
	}
	for _, tc := range []struct{ line, want string }{
		{"users show nobody", `Error: user "nobody": not found`},
		{"bogus", `unknown command "bogus"`},
		{"users ls; rm -rf /", "shell operators (; & | < >) are not supported"},
		{`users show "bob`, "a quote is not closed"},
		{"help", "Available Commands"},
		{"help", "exit"},
		{"", ""},
	} {
		if out := s.line(tc.line); !strings.Contains(out, tc.want) {
			t.Errorf("%q: want %q in\n%q", tc.line, tc.want, out)
		}
	}
	s.resize <- WindowSize{200, 50}
	s.typ("exit\r")
	if code := s.exit(); code != ExitOK {
		t.Errorf("exit status %d", code)
	}
}

func TestInteractiveConfirmation(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect(Prompt)

	s.typ("servers delete web-2\r")
	s.expect("This will delete server web-2 (srv-web-2) from project web. Type yes to confirm: ")
	s.typ("no\r")
	s.expect("not confirmed; nothing was changed")
	if _, srv, _ := h.store.State().ServerByID(nil, "srv-web-2"); srv == nil {
		t.Fatal("server deleted after no")
	}

	before := len(h.auditEvents())
	s.typ("servers delete web-2\r")
	s.expect("Type yes to confirm: ")
	s.typ("yes\r")
	s.expect("server web-2 deleted")
	if _, srv, _ := h.store.State().ServerByID(nil, "srv-web-2"); srv != nil {
		t.Fatal("server not deleted after yes")
	}
	if evs := h.auditEvents(); len(evs) != before+1 || evs[len(evs)-1].Type != "server.delete" {
		t.Errorf("audit after confirmed delete: %d new", len(evs)-before)
	}

	// --yes skips the question interactively too; "YES" or "y" is not yes.
	s.typ("bindings revoke --all\r")
	s.expect("Type yes to confirm: ")
	s.typ("y\r")
	s.expect("not confirmed")
	wantBindings(t, h, 1)
	s.typ("projects delete empty --yes\r")
	s.expect("project empty deleted")

	// The answers are not in the history: Up brings back the last command.
	s.typ("\x1b[A")
	s.expect("projects delete empty --yes")
	s.typ("\x15exit\r")
	s.exit()
}

func TestInteractiveTabCompletion(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect(Prompt)

	// A command: "ser" is the start of servers and service-tokens, so Tab
	// completes what they share, a second Tab lists both, and one more letter
	// settles it.
	s.typ("ser\t")
	s.expect("serv")
	s.typ("\t")
	s.expect("servers  service-tokens")
	s.typ("e\t")
	s.expect("servers ")
	s.typ("ls\r")
	out := s.expect(Prompt)
	if !strings.Contains(out, "db-1") {
		t.Errorf("completed servers ls:\n%q", out)
	}

	// A subcommand, a flag, and a flag's value (a project name).
	s.typ("servers l\t")
	s.expect("label  ls")
	s.typ("s\t")
	s.expect("servers ls ")
	s.typ("--pro\t")
	s.expect("--project ")
	s.typ("d\t")
	s.expect("db ")
	s.typ("\r")
	out = s.expect(Prompt)
	if !strings.Contains(out, "db-1") || strings.Contains(out, "web-1") {
		t.Errorf("servers ls --project db:\n%q", out)
	}

	// Object names: two servers share "web-": complete to it, then list both.
	s.typ("servers show w\t")
	s.expect("web-")
	s.typ("\t")
	s.expect("web-1  web-2")
	s.typ("2\r")
	s.expect("srv-web-2")

	// Users, entitlements, groups (second argument).
	s.typ("users show bo\t")
	s.expect("bob ")
	s.typ("\r")
	s.expect("bob@example.com")
	s.typ("entitlements show re\t")
	s.expect("restart-nginx ")
	s.typ("\r")
	s.expect("/usr/bin/systemctl restart nginx")
	s.typ("projects grant web o\t")
	s.expect("ops ")
	s.typ("--role a\t")
	s.expect("admin ")
	s.typ("\r")
	s.expect("group ops granted admin in project web")

	// A name that needs quoting is inserted quoted.
	h.apply(&raftstore.UserUpsert{User: raftstore.User{ID: "sub-dan", Login: "dan", UnixName: "dan",
		Groups: []string{"Domain Admins"}}, EnsureGroups: true, Now: h.now})
	s.typ("groups show Dom\t")
	s.expect("'Domain Admins' ")
	s.typ("\r")
	s.expect("members: dan")

	// Nothing to complete leaves the line alone.
	s.typ("zzz\t\x15exit\r")
	if code := s.exit(); code != ExitOK {
		t.Errorf("exit status %d", code)
	}
}

func TestInteractiveCtrlCAndCtrlD(t *testing.T) {
	h := newHarness(t)
	s := startTerm(t, h)
	s.expect(Prompt)
	// Ctrl-C abandons the line and gives a fresh prompt, not a closed session.
	s.typ("users delete bob\x03")
	s.expect("users delete bob^C")
	s.typ("whoami\r")
	out := s.expect("node:")
	if !strings.Contains(out, "sub-alice") || strings.Contains(out, "deleted") {
		t.Errorf("after ^C:\n%q", out)
	}
	wantUserStatus(t, h, "sub-bob", raftstore.UserActive)
	// Ctrl-D on an empty line leaves.
	s.typ("\x04")
	if code := s.exit(); code != ExitOK {
		t.Errorf("exit status %d", code)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
		err  bool
	}{
		{"servers ls --json", []string{"servers", "ls", "--json"}, false},
		{`  projects   create  api `, []string{"projects", "create", "api"}, false},
		{`x --command '/usr/bin/systemctl restart "app"'`, []string{"x", "--command", `/usr/bin/systemctl restart "app"`}, false},
		{`x "a b" c\ d ''`, []string{"x", "a b", "c d", ""}, false},
		{`x $HOME`, []string{"x", "$HOME"}, false},
		{"x `id`", []string{"x", "`id`"}, false},
		{`x '#' #c`, []string{"x", "#", "#c"}, false},
		{`x 'it'\''s'`, []string{"x", "it's"}, false},
		{`x 'a`, nil, true},
		{`x | y`, nil, true},
		{`x > f`, nil, true},
		{`x $(id)`, []string{"x", "$(id)"}, false},
		{`x (y`, nil, true},
	}
	for _, tc := range tests {
		got, err := splitWords(tc.line)
		if (err != nil) != tc.err || strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
			t.Errorf("splitWords(%q) = %q, %v", tc.line, got, err)
		}
	}
	for _, w := range []string{"plain", "a b", "it's", "", "Domain Admins", "x;y"} {
		got, err := splitWords(quoteWord(w))
		if err != nil || len(got) != 1 || got[0] != w {
			t.Errorf("quoteWord(%q) = %q splits to %q, %v", w, quoteWord(w), got, err)
		}
	}
}
