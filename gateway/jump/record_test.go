package jump

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
)

// auditLog collects audit events.
type auditLog struct {
	mu     sync.Mutex
	events []string
}

func (a *auditLog) Record(typ, _ string, _ map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, typ)
}

func (a *auditLog) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if e == typ {
			n++
		}
	}
	return n
}

// fakeRecorder fails its calls with err once err is set.
type fakeRecorder struct {
	mu      sync.Mutex
	err     error
	outputs int
}

func (r *fakeRecorder) Output([]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.outputs++
	return nil
}
func (r *fakeRecorder) Input([]byte) error             { return nil }
func (r *fakeRecorder) Resize(int, int) error          { return nil }
func (r *fakeRecorder) Close() (string, string, error) { return "", "", nil }

func (r *fakeRecorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *fakeRecorder) written() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outputs
}

// limitErr is a recording stopped by one of its limits.
type limitErr struct{}

func (limitErr) Error() string       { return "recording: size cap reached (details)" }
func (limitErr) UserMessage() string { return "the recording reached its size limit" }

func ptyPayload() []byte {
	return gossh.Marshal(struct {
		Term         string
		W, H, PW, PH uint32
		Modes        string
	}{Term: "xterm", W: 80, H: 24})
}

// recordingPair is a pty channel of a session of a project that records,
// failing open or closed; the session's ending is sent on ended.
func recordingPair(failOpen bool, factory RecorderFactory) (p *pair, audit *auditLog, ended chan string) {
	audit = &auditLog{}
	ended = make(chan string, 4)
	s := &session{id: "s-1", actor: "alice", project: "web", audit: audit, logger: slog.New(slog.DiscardHandler), clock: realClock{}, record: factory,
		metrics: NewMetrics(nil), settings: raftstore.ProjectSettings{Recording: true, RecordingFailOpen: failOpen}}
	s.shutdown = func(msg string) { ended <- msg }
	return &pair{s: s, session: true}, audit, ended
}

// The project's failure policy decides, in one place, what each kind of
// recording failure does: failing open, the session goes on unrecorded
// after one report; failing closed, it ends (and output that would go
// unrecorded is dropped), with a reason that names a limit when one was
// reached.
func TestRecordingFailurePolicy(t *testing.T) {
	errDisk := errors.New("recording: no space left on device")
	const closedReason = "Rampart: session ended: recording failed and project web requires it"
	tests := []struct {
		name     string
		failOpen bool
		// when: "start" (the factory fails), "later" (the recorder reports
		// through Failed), "output" (an Output call fails).
		when       string
		err        error
		wantStart  bool // startRecording returns the error
		wantEnd    string
		wantShown  int // bytes of a later output passed on
		wantAudits int
	}{
		{name: "ok/open-start", failOpen: true, when: "start", err: errDisk, wantShown: 5, wantAudits: 1},
		{name: "fail/closed-start", when: "start", err: errDisk, wantStart: true, wantShown: 5, wantAudits: 1},
		{name: "ok/open-later", failOpen: true, when: "later", err: errDisk, wantShown: 5, wantAudits: 1},
		{name: "fail/closed-later", when: "later", err: errDisk, wantEnd: closedReason, wantShown: 5, wantAudits: 1},
		{name: "fail/closed-later-limit", when: "later", err: limitErr{}, wantShown: 5, wantAudits: 1,
			wantEnd: "Rampart: session ended: the recording reached its size limit and project web requires it"},
		{name: "ok/open-output", failOpen: true, when: "output", err: errDisk, wantShown: 5},
		{name: "fail/closed-output", when: "output", err: errDisk, wantEnd: closedReason, wantShown: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &fakeRecorder{}
			var spec RecordingSpec
			factory := func(s RecordingSpec) (Recorder, error) {
				spec = s
				if tc.when == "start" {
					return nil, tc.err
				}
				return rec, nil
			}
			p, audit, ended := recordingPair(tc.failOpen, factory)
			err := p.startRecording(ptyPayload())
			if (err != nil) != tc.wantStart {
				t.Fatalf("startRecording: %v, want an error: %v", err, tc.wantStart)
			}
			if spec.FailOpen != tc.failOpen || spec.Name != "s-1" || spec.Width != 80 || spec.Term != "xterm" {
				t.Fatalf("recorder asked for %+v", spec)
			}
			switch tc.when {
			case "later":
				spec.Failed(tc.err)
			case "output":
				rec.fail(tc.err)
			}
			before := rec.written()
			if n := p.recordOutput([]byte("hello")); n != tc.wantShown {
				t.Fatalf("output passed on: %d bytes, want %d", n, tc.wantShown)
			}
			if tc.when == "output" {
				// The recording is broken: nothing more goes to it.
				rec.fail(nil)
				if p.recordOutput([]byte("again")); rec.written() != before {
					t.Fatal("output recorded after the recording failed")
				}
			}
			if tc.wantEnd != "" {
				if got := <-ended; got != tc.wantEnd {
					t.Fatalf("person told %q, want %q", got, tc.wantEnd)
				}
			} else {
				select {
				case got := <-ended:
					t.Fatalf("session ended: %q", got)
				default:
				}
			}
			if got := audit.count("recording.fail"); got != tc.wantAudits {
				t.Fatalf("recording.failed audited %d times, want %d", got, tc.wantAudits)
			}
			// Each failure reported is counted once, under the policy.
			policy, other := "fail_closed", "fail_open"
			if tc.failOpen {
				policy, other = other, policy
			}
			failures := p.s.metrics.RecordingFailures
			if got := testutil.ToFloat64(failures.WithLabelValues(policy)); got != float64(tc.wantAudits) {
				t.Fatalf("rampart_recording_failures_total{policy=%q} = %v, want %d", policy, got, tc.wantAudits)
			}
			if got := testutil.ToFloat64(failures.WithLabelValues(other)); got != 0 {
				t.Fatalf("rampart_recording_failures_total{policy=%q} = %v, want 0", other, got)
			}
		})
	}
}

// A project that does not record gets no recorder.
func TestRecordingOnlyWhenProjectRecords(t *testing.T) {
	called := false
	p, _, _ := recordingPair(false, func(RecordingSpec) (Recorder, error) { called = true; return nil, errors.New("unexpected") })
	p.s.settings.Recording = false
	if err := p.startRecording(ptyPayload()); err != nil || called {
		t.Fatalf("startRecording: %v, factory called: %v", err, called)
	}
}

// Every channel of a project that records is recorded once, whatever
// starts it: a shell without a terminal and a subsystem other than sftp
// as an exec is (stdout and stderr), a shell after its pty request in the
// pty's recording, sftp by its watcher alone.
func TestRecordingOfEveryChannel(t *testing.T) {
	subsystem := func(name string) []byte { return gossh.Marshal(struct{ Name string }{name}) }
	tests := []struct {
		name     string
		requests []string // request types in order; "subsystem" carries sub
		sub      string
		want     []RecordingSpec
	}{
		{name: "ok/shell-without-a-terminal", requests: []string{"shell"}, want: []RecordingSpec{{Name: "s-1", Session: "s-1"}}},
		{name: "ok/shell-after-its-pty", requests: []string{"pty-req", "shell"},
			want: []RecordingSpec{{Name: "s-1", Session: "s-1", Width: 80, Height: 24, Term: "xterm"}}},
		{name: "ok/subsystem", requests: []string{"subsystem"}, sub: "netconf",
			want: []RecordingSpec{{Name: "s-1", Session: "s-1", Command: "subsystem netconf"}}},
		{name: "ok/sftp-watched-not-recorded", requests: []string{"subsystem"}, sub: "sftp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []RecordingSpec
			p, _, _ := recordingPair(false, func(s RecordingSpec) (Recorder, error) {
				s.Failed = nil
				got = append(got, s)
				return &fakeRecorder{}, nil
			})
			for _, typ := range tc.requests {
				payload := ptyPayload()
				if typ == "subsystem" {
					payload = subsystem(tc.sub)
				}
				if err := p.startRequestRecording(typ, payload); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("recordings started %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Name != w.Name || g.Session != w.Session || g.Width != w.Width || g.Height != w.Height || g.Term != w.Term ||
					g.Command != w.Command || g.RecordInput || g.FailOpen {
					t.Fatalf("recording %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	// Failing closed, a shell whose recording cannot start does not run.
	p, _, _ := recordingPair(false, func(RecordingSpec) (Recorder, error) { return nil, errors.New("disk full") })
	if err := p.startRequestRecording("shell", nil); err == nil {
		t.Fatal("a shell started unrecorded in a project that fails closed")
	}
}

// slowRecorder's Output waits until released: a recording whose disk has
// fallen behind.
type slowRecorder struct {
	fakeRecorder
	entered, release chan struct{}
}

func (r *slowRecorder) Output(b []byte) error {
	r.entered <- struct{}{}
	<-r.release
	return r.fakeRecorder.Output(b)
}

// TestRecordingWaitDoesNotHoldThePair: while output waits for the
// recording's disk, the person's input and window changes, which run on
// other goroutines of the same channel (the request loop among them), go
// on.
func TestRecordingWaitDoesNotHoldThePair(t *testing.T) {
	rec := &slowRecorder{entered: make(chan struct{}), release: make(chan struct{})}
	p, _, _ := recordingPair(false, func(RecordingSpec) (Recorder, error) { return rec, nil })
	p.s.settings.RecordInput = true
	if err := p.startRecording(ptyPayload()); err != nil {
		t.Fatal(err)
	}
	shown := make(chan int)
	go func() { shown <- p.recordOutput([]byte("a lot")) }()
	<-rec.entered
	done := make(chan struct{})
	go func() {
		p.resize(100, 40)
		p.recordInput([]byte("^C"))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a window change and input waited for the recording's disk")
	}
	close(rec.release)
	if n := <-shown; n != len("a lot") {
		t.Fatalf("output passed on: %d bytes", n)
	}
}
