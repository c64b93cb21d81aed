package jump

import (
	"io"

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
	if c.p.record == nil || p.rec != nil {
		return nil
	}
	rec, err := c.p.record(c.sessionID, c.acc.project, int(pty.W), int(pty.H), pty.Term)
	if err != nil {
		return p.recordingFailed(err)
	}
	p.rec = rec
	return nil
}

// recordingFailed applies the project's failure policy: fail open audits and
// goes on unrecorded; fail closed returns the error, which ends the session.
func (p *pair) recordingFailed(err error) error {
	c := p.b.c
	c.p.logger.Error("recording failed", "session", c.sessionID, "err", err)
	c.p.audit.Record("recording.failed", c.user.Login, c.fields("error", err.Error()))
	p.rec = nil
	if c.acc.project.Settings.RecordingFailOpen {
		return nil
	}
	return err
}

func (p *pair) resize(w, h int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rec != nil {
		if err := p.rec.Resize(w, h); err != nil {
			p.failWhileLocked(err)
		}
	}
}

// failWhileLocked handles a recording write error (p.mu held).
func (p *pair) failWhileLocked(err error) {
	if p.recordingFailed(err) != nil {
		go p.b.c.end(p.b, "recording failed and project "+p.b.c.srv.Project+" requires it")
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
	if err != nil {
		p.failWhileLocked(err)
	}
	p.b.mu.Lock()
	p.b.recSHA, p.b.recPath = sum, path
	p.b.mu.Unlock()
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
		if rr.p.rec != nil {
			if werr := rr.p.rec.Output(b[:n]); werr != nil {
				rr.p.failWhileLocked(werr)
			}
		}
		rr.p.mu.Unlock()
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
		if ir.p.rec != nil && ir.p.b.c.acc.project.Settings.RecordInput {
			if werr := ir.p.rec.Input(b[:n]); werr != nil {
				ir.p.failWhileLocked(werr)
			}
		}
		ir.p.mu.Unlock()
	}
	return n, err
}
