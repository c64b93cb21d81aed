package gateway

import (
	"path/filepath"

	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

// recordingsDir is where this node keeps the recordings of sessions it
// carried.
func (n *Node) recordingsDir() string { return n.dir.path("recordings") }

// startRecording is the jump proxy's recorder factory: a pty session of a
// project that records gets an asciicast v2 file, with the project's failure
// policy. Projects that do not record get nil.
func (n *Node) startRecording(sessionID string, project *raftstore.Project, width, height int, term string) (jump.Recorder, error) {
	if !project.Settings.Recording {
		return nil, nil
	}
	policy := recording.FailClosed
	if project.Settings.RecordingFailOpen {
		policy = recording.FailOpen
	}
	rec, err := recording.New(recording.Config{
		Dir: n.recordingsDir(), SessionID: sessionID, Width: width, Height: height, Term: term,
		Title: "rampart session " + sessionID, RecordInput: project.Settings.RecordInput, Policy: policy,
		OnError: func(err error) {
			n.logger.Error("recording failed", "session", sessionID, "project", project.Name, "err", err)
			n.audit.Record("recording.failed", "", map[string]string{"session": sessionID, "project": project.Name, "error": err.Error()})
		},
	})
	if err != nil {
		return nil, err
	}
	return &recorderAdapter{r: rec, base: n.recordingsDir()}, nil
}

// recorderAdapter gives the jump proxy the recording's hash and its path
// relative to the recordings directory.
type recorderAdapter struct {
	r    *recording.Recorder
	base string
}

func (a *recorderAdapter) Output(p []byte) error { return a.r.Output(p) }
func (a *recorderAdapter) Input(p []byte) error  { return a.r.Input(p) }
func (a *recorderAdapter) Resize(w, h int) error { return a.r.Resize(w, h) }

func (a *recorderAdapter) Close() (string, string, error) {
	sum, err := a.r.Close()
	rel, rerr := filepath.Rel(a.base, sum.Path)
	if rerr != nil || sum.Path == "" {
		rel = ""
	}
	return sum.SHA256, rel, err
}
