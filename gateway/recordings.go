package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

// recordingsDir is where this node keeps the recordings of sessions it
// carried: recording.dir, or <data_dir>/recordings.
func (n *Node) recordingsDir() string {
	if n.cfg.Recording.Dir != "" {
		return n.cfg.Recording.Dir
	}
	return n.dir.path("recordings")
}

// startRecording is the jump proxy's recorder factory: a pty session of a
// project that records gets an asciicast v2 file, with the project's failure
// policy. Projects that do not record get nil.
func (n *Node) startRecording(sessionID string, project *raftstore.Project, width, height int, term string, failed func(error)) (jump.Recorder, error) {
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
		OnError: failed, MaxBytes: n.cfg.Recording.MaxSessionBytes, MinFreeBytes: uint64(n.cfg.Recording.MinFreeMiB) << 20,
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

// errBadRecordingPath: a session's recorded path is not a plain relative
// path to a .cast file under the recordings directory. Raft is trusted, but
// a path from it never decides which file of the node is read.
var errBadRecordingPath = errors.New("the recording path recorded for this session is not a relative .cast path under the recordings directory")

// recordingFetchTimeout bounds connecting to the node holding a recording and
// waiting for its answer; the transfer itself runs as long as the replay's
// context allows.
const recordingFetchTimeout = 30 * time.Second

// recordingFiles opens session recordings: the ones this node carried from
// its recordings directory, another node's from that node's API
// (GET /v1/internal/recordings/{session}), over mutual TLS with this node's
// certificate. The admin shell's `sessions replay` and the node-only
// endpoint use it.
type recordingFiles struct {
	nodeID string
	dir    string
	state  func() *raftstore.State
	// tls is this node's client TLS configuration (its certificate, the
	// cluster CA); each fetch clones it to pin the peer's identity.
	tls *tls.Config
}

func (n *Node) recordingFiles() *recordingFiles {
	return &recordingFiles{nodeID: n.id, dir: n.recordingsDir(), state: n.store.State, tls: n.tls.RaftClient}
}

// OpenLocal opens the recording of a session this node carried. The path
// must be clean, relative and end in .cast, and it is opened through an
// os.Root, so neither ".." nor a symbolic link leads out of the directory.
func (r *recordingFiles) OpenLocal(s *raftstore.Session) (io.ReadCloser, error) {
	if s.Node != r.nodeID {
		return nil, fmt.Errorf("session %s was carried by node %s, not by this node (%s)", s.ID, s.Node, r.nodeID)
	}
	p := s.RecordingPath
	if !filepath.IsLocal(p) || filepath.Clean(p) != p || filepath.Ext(p) != ".cast" {
		return nil, fmt.Errorf("session %s: %w", s.ID, errBadRecordingPath)
	}
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, fmt.Errorf("open the recordings directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open the recording of session %s: %w", s.ID, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("session %s: %w", s.ID, errBadRecordingPath)
	}
	return f, nil
}

// Open returns a session's recording from whichever node holds it.
func (r *recordingFiles) Open(ctx context.Context, s *raftstore.Session) (io.ReadCloser, error) {
	if s.Node == r.nodeID {
		return r.OpenLocal(s)
	}
	_, node, err := r.state().NodeByID(nil, s.Node)
	if err != nil {
		return nil, err
	}
	if node == nil || node.APIAddr == "" {
		return nil, fmt.Errorf("node %s is no longer a member of the cluster; its recordings are on its own disk", s.Node)
	}
	return r.fetch(ctx, s.Node, node.APIAddr, s.ID)
}

// fetch asks node nodeID at apiAddr for a recording. The server must present
// the certificate of that very node, not just of some node.
func (r *recordingFiles) fetch(ctx context.Context, nodeID, apiAddr, sessionID string) (io.ReadCloser, error) {
	cfg := r.tls.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the node presented no certificate")
		}
		role, id, ok := ca.Identity(cs.PeerCertificates[0])
		if !ok || role != ca.RoleNode || id != nodeID {
			return fmt.Errorf("the server at %s is %s %q, not node %q", apiAddr, role, id, nodeID)
		}
		return nil
	}
	tr := &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: recordingFetchTimeout,
		ResponseHeaderTimeout: recordingFetchTimeout, DialContext: (&net.Dialer{Timeout: recordingFetchTimeout}).DialContext}
	client := &http.Client{Transport: tr}
	u := "https://" + apiAddr + "/v1/internal/recordings/" + url.PathEscape(sessionID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("node %s at %s: %w", nodeID, apiAddr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		resp.Body.Close()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("node %s: %s: %s", nodeID, resp.Status, e.Error)
	}
	return &closeBoth{ReadCloser: resp.Body, after: tr.CloseIdleConnections}, nil
}

// closeBoth closes a response body, then the transport's connections.
type closeBoth struct {
	io.ReadCloser
	after func()
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.after()
	return err
}
