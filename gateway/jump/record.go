package jump

import (
	"errors"
	"io"
	"strconv"

	gossh "golang.org/x/crypto/ssh"
)

// startRecording begins recording a pty session when its project records.
// An error means the session must not go on (the project fails closed).
func (p *pair) startRecording(payload []byte) error {
	var pty struct {
		Term         string
		W, H, PW, PH uint32
		Modes        string
	}
	_ = gossh.Unmarshal(payload, &pty)
	c := p.b.c
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pty = true
	if c.p.record == nil || p.rec != nil || p.recBroken {
		return nil
	}
	name := p.b.recordingName()
	p.recFirst = name == c.sessionID
	rec, err := c.p.record(name, c.acc.project, int(pty.W), int(pty.H), pty.Term, p.recordingBroke)
	if err != nil {
		p.reportRecordingFailure(err)
		if c.acc.project.Settings.RecordingFailOpen {
			return nil
		}
		return err
	}
	p.rec = rec
	return nil
}

// endUnrecorded ends the session of a project that fails closed when its
// recording failed. A recording stopped by a limit (its size cap, the
// disk's free-space floor) says which; the error's other details stay in
// the log and the audit.
func (p *pair) endUnrecorded(err error) {
	reason := "recording failed"
	var limit interface{ UserMessage() string }
	if errors.As(err, &limit) {
		reason = limit.UserMessage()
	}
	p.b.c.end(p.b, reason+" and project "+p.b.c.srv.Project+" requires it")
}

// reportRecordingFailure logs and audits a recording failure.
func (p *pair) reportRecordingFailure(err error) {
	c := p.b.c
	c.p.logger.Error("recording failed", "session", c.sessionID, "err", err)
	c.p.audit.Record("recording.failed", c.user.Login, c.fields("error", err.Error()))
}

// recordingBroke hears of a failure of a running recording (once, from the
// recorder, whatever the policy): it is reported, and if the project fails
// closed the session ends at once, idle or not, instead of at its next
// output. It runs on the recorder's goroutines: it neither blocks nor takes
// p.mu.
func (p *pair) recordingBroke(err error) {
	p.reportRecordingFailure(err)
	if !p.b.c.acc.project.Settings.RecordingFailOpen {
		go p.endUnrecorded(err)
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
	if !p.b.c.acc.project.Settings.RecordingFailOpen {
		p.dropOutput = true
		go p.endUnrecorded(err)
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
	c := p.b.c
	c.p.audit.Record("session.recording", c.user.Login, c.fields("path", path, "sha256", sum))
	// The session's record names its first recording; the audit log has
	// every one.
	if p.recFirst {
		p.b.mu.Lock()
		p.b.recSHA, p.b.recPath = sum, path
		p.b.mu.Unlock()
	}
}

// recordingName names the connection's next recording: the session id for
// the first, then "<id>-2", "<id>-3", ... for further pty channels on the
// same connection (OpenSSH ControlMaster, VS Code's terminals).
func (b *bridge) recordingName() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recordings++
	if b.recordings == 1 {
		return b.c.sessionID
	}
	return b.c.sessionID + "-" + strconv.Itoa(b.recordings)
}

// recordingReader reads the target's output and records it.
type recordingReader struct {
	r io.Reader
	p *pair
}

func (rr *recordingReader) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if n > 0 {
		rr.p.b.touch()
		rr.p.mu.Lock()
		if rr.p.recording() {
			if werr := rr.p.rec.Output(b[:n]); werr != nil {
				rr.p.failWhileLocked(werr)
			}
		}
		if rr.p.dropOutput {
			n = 0 // not recorded, so not shown: the session is ending
		}
		rr.p.mu.Unlock()
	}
	return n, err
}

// activityReader marks the connection active whenever data arrives (the
// target's stderr: a build reporting progress there is not idle).
type activityReader struct {
	r io.Reader
	b *bridge
}

func (ar *activityReader) Read(p []byte) (int, error) {
	n, err := ar.r.Read(p)
	if n > 0 {
		ar.b.touch()
	}
	return n, err
}

// inputReader reads what the person types and records it when asked.
type inputReader struct {
	r io.Reader
	p *pair
}

func (ir *inputReader) Read(b []byte) (int, error) {
	n, err := ir.r.Read(b)
	if n > 0 {
		ir.p.b.touch()
		ir.p.mu.Lock()
		if ir.p.recording() && ir.p.b.c.acc.project.Settings.RecordInput {
			if werr := ir.p.rec.Input(b[:n]); werr != nil {
				ir.p.failWhileLocked(werr)
			}
		}
		ir.p.mu.Unlock()
	}
	return n, err
}
