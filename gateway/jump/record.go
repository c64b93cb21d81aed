package jump

import (
	"errors"
	"io"
	"strconv"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The project's recording failure policy is read in failOpen and nowhere
// else in the jump: the recorder is told it (RecordingSpec.FailOpen), and
// every failure the jump hears of goes through recordingFailed, which
// reports it and says whether the session must end.

// failOpen reports whether the session's project fails open: a recording
// that fails is reported and the session goes on unrecorded. Otherwise it
// fails closed, and the session ends.
func (s *session) failOpen() bool { return s.settings.RecordingFailOpen }

// recordingFailed applies the failure policy to err: it logs and audits it
// when report is set (a failure is reported once, by whoever hears of it
// first), and reports whether the session must end.
func (s *session) recordingFailed(err error, report bool) (mustEnd bool) {
	if report {
		policy := "fail_closed"
		if s.failOpen() {
			policy = "fail_open"
		}
		s.metrics.RecordingFailures.WithLabelValues(policy).Inc()
		s.logger.Error("recording failed", "session", s.id, "err", err)
		s.event(EventRecordingFail, "error", err.Error())
	}
	return !s.failOpen()
}

// endUnrecorded ends a session whose recording failed when its project
// requires one. A recording stopped by a limit (its size cap, the disk's
// free-space floor) says which; the error's other details stay in the log
// and the audit.
func (s *session) endUnrecorded(err error) {
	reason := "recording failed"
	var limit interface{ UserMessage() string }
	if errors.As(err, &limit) {
		reason = limit.UserMessage()
	}
	s.end(reason + " and project " + s.project + " requires it")
}

// recordingName names the connection's next recording: the session id for
// the first, then "<id>-2", "<id>-3", ... for further pty channels on the
// same connection (OpenSSH ControlMaster, VS Code's terminals).
func (s *session) recordingName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordings++
	if s.recordings == 1 {
		return s.id
	}
	return s.id + "-" + strconv.Itoa(s.recordings)
}

// recording returns the SHA-256 and path of the connection's recording (the
// first pty session's, if it had several).
func (s *session) recording() (sha, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recSHA, s.recPath
}

// startRecording begins recording a pty session when its project records.
// An error means the session must not go on (the project fails closed).
func (p *pair) startRecording(payload []byte) error {
	var pty struct {
		Term         string
		W, H, PW, PH uint32
		Modes        string
	}
	_ = gossh.Unmarshal(payload, &pty)
	return p.beginRecording(RecordingSpec{Width: int(pty.W), Height: int(pty.H), Term: pty.Term})
}

// startExecRecording begins recording an exec session without a terminal
// (one with a pty is recorded from its pty request): its stdout and stderr
// as output, the command in the header.
func (p *pair) startExecRecording(command string) error {
	return p.beginRecording(RecordingSpec{Command: command})
}

// startRequestRecording audits a channel request that starts what the
// channel runs and begins its recording: a pty request records the
// terminal; an exec, a shell without a terminal (ssh -T, a script on
// stdin) and a subsystem other than sftp (watched by sftpwatch instead)
// record stdout and stderr as output, and stdin only when the project
// records input. A channel is recorded once: a shell or exec after its pty
// request goes to the pty's recording. An error means the session must not
// go on.
func (p *pair) startRequestRecording(typ string, payload []byte) error {
	s := p.s
	switch typ {
	case "pty-req":
		return p.startRecording(payload)
	case "exec":
		var e struct{ Command string }
		_ = gossh.Unmarshal(payload, &e)
		s.event(EventSessionExec, "command", raftstore.BoundText(e.Command, maxAuditCommand))
		return p.startExecRecording(raftstore.BoundText(e.Command, maxAuditCommand))
	case "shell":
		s.event(EventSessionShell)
		return p.beginRecording(RecordingSpec{})
	case "subsystem":
		var e struct{ Name string }
		_ = gossh.Unmarshal(payload, &e)
		if e.Name == "sftp" {
			return nil
		}
		return p.startExecRecording("subsystem " + raftstore.BoundText(e.Name, maxAuditCommand))
	}
	return nil
}

func (p *pair) beginRecording(spec RecordingSpec) error {
	s := p.s
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.record == nil || !s.settings.Recording || p.rec != nil || p.recBroken || p.recTried {
		return nil
	}
	p.recTried = true
	spec.Name, spec.Session = s.recordingName(), s.id
	p.recFirst = spec.Name == s.id
	spec.RecordInput, spec.FailOpen, spec.Failed = s.settings.RecordInput, s.failOpen(), p.recordingBroke
	rec, err := s.record(spec)
	if err != nil {
		if s.recordingFailed(err, true) {
			return err
		}
		return nil
	}
	p.rec = rec
	return nil
}

// recordingBroke hears of a failure of a running recording (once, from the
// recorder, whatever the policy): it is reported, and if the project fails
// closed the session ends at once, idle or not, instead of at its next
// output. It runs on the recorder's goroutines: it neither blocks nor takes
// p.mu.
func (p *pair) recordingBroke(err error) {
	if p.s.recordingFailed(err, true) {
		go p.s.endUnrecorded(err)
	}
}

func (p *pair) resize(w, h int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recording() {
		if err := p.rec.Resize(w, h); err != nil {
			p.failWhileLocked(err)
		}
	}
}

// recording reports whether events still go to the recording (p.mu held).
func (p *pair) recording() bool { return p.rec != nil && !p.recBroken }

// failWhileLocked handles an error a recording call returned (p.mu held):
// only a project that fails closed gets one. Nothing more is written to the
// recording (closeRecording still closes it, so what it holds is kept and
// its digest recorded), the target's further output is dropped instead of
// reaching the person unrecorded, and the session ends. The recorder has
// reported the failure through recordingBroke, which ends it too; ending
// twice is harmless.
func (p *pair) failWhileLocked(err error) {
	if p.recBroken {
		return
	}
	p.recBroken = true
	if p.s.recordingFailed(err, false) {
		p.dropOutput = true
		go p.s.endUnrecorded(err)
	}
}

func (p *pair) closeRecording() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rec == nil {
		return
	}
	sum, path, err := p.rec.Close()
	p.rec = nil
	if err != nil && !p.recBroken {
		p.failWhileLocked(err)
	}
	if path == "" {
		return
	}
	s := p.s
	s.event(EventRecordingSave, "path", path, "sha256", sum)
	// The session's record names its first recording; the audit log has
	// every one.
	if p.recFirst {
		s.mu.Lock()
		s.recSHA, s.recPath = sum, path
		s.mu.Unlock()
	}
}

// recordOutput records what the target sent (b, read into the channel's
// buffer) and says how much of it to pass on: all of it, or nothing once a
// recording the project requires has failed.
func (p *pair) recordOutput(b []byte) int {
	p.record(b, (Recorder).Output)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropOutput {
		return 0 // not recorded, so not shown: the session is ending
	}
	return len(b)
}

// recordInput records what the person typed when the project asks for it.
func (p *pair) recordInput(b []byte) {
	if p.s.settings.RecordInput {
		p.record(b, (Recorder).Input)
	}
}

// record hands b to the running recording through write. It does so
// outside p.mu: a recorder waits while its disk falls behind, and the other
// direction, a window change and the channel's requests must not wait with
// it. A recording closed meanwhile (the session is ending) is no failure.
func (p *pair) record(b []byte, write func(Recorder, []byte) error) {
	p.mu.Lock()
	rec := p.rec
	if !p.recording() {
		rec = nil
	}
	p.mu.Unlock()
	if rec == nil {
		return
	}
	if err := write(rec, b); err != nil {
		p.mu.Lock()
		if p.rec == rec {
			p.failWhileLocked(err)
		}
		p.mu.Unlock()
	}
}

// recordingReader reads the target's output (stdout, or stderr) and
// records it; stdout also feeds an sftp channel's watcher.
type recordingReader struct {
	r      io.Reader
	s      *session
	p      *pair
	stdout bool
}

func (rr *recordingReader) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if n > 0 {
		rr.s.touch()
		if w := rr.p.sftp.Load(); w != nil && rr.stdout {
			w.Server(b[:n])
		}
		n = rr.p.recordOutput(b[:n])
	}
	return n, err
}

// inputReader reads what the person types and records it when asked.
type inputReader struct {
	r io.Reader
	s *session
	p *pair
}

func (ir *inputReader) Read(b []byte) (int, error) {
	n, err := ir.r.Read(b)
	if n > 0 {
		ir.s.touch()
		if w := ir.p.sftp.Load(); w != nil {
			w.Client(b[:n])
		}
		ir.p.recordInput(b[:n])
	}
	return n, err
}
