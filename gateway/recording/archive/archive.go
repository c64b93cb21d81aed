// Package archive is the node's store of session recordings: each pty
// session's asciicast file under the node's recordings directory, opened
// from this node's disk or fetched from the node that holds it.
//
// gateway/recording writes and reads one file and imports nothing but the
// standard library; this package adds what only a node has (the
// replicated state, the cluster's TLS, the node-only API), so the leaf
// stays a leaf.
package archive

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
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Store is what the archive reads of the replicated state: where the other
// nodes' APIs are.
type Store interface {
	State() *raftstore.State
}

// Config is what an archive is built from.
type Config struct {
	// Dir is the recordings directory (recording.dir, or
	// <data_dir>/recordings).
	Dir string
	// NodeID is this node's id: the sessions it carried are on its disk.
	NodeID string
	Store  Store
	// TLS is this node's client TLS configuration (its certificate, the
	// cluster CA); each fetch clones it to pin the peer's identity.
	TLS *tls.Config
	// MaxBytes caps each recording (recording.max_session_bytes; 0: no
	// cap), and MinFreeBytes is the recordings disk's free-space floor (0:
	// none); see recording.Config.
	MaxBytes     int64
	MinFreeBytes uint64
	// Replicas copies recordings to other nodes and finds copies anywhere
	// in the cluster; nil: recordings stay on this node.
	Replicas *replica.Replicator
}

// Archive holds this node's recordings and reaches the other nodes'. The
// jump starts recordings through it; the admin shell's `sessions replay`
// and the node-only endpoint open them.
type Archive struct {
	cfg Config
}

// New returns the archive of cfg.
func New(cfg Config) *Archive { return &Archive{cfg: cfg} }

// Spec is what to record (recording.Spec).
type Spec = recording.Spec

// liveFlushInterval is how often a recording's buffered events reach its
// file, and so its live copy on another node: what losing the node
// mid-session may lose.
const liveFlushInterval = 250 * time.Millisecond

// Start begins an asciicast v2 recording of a pty or exec session, and its
// live copy on another node.
func (a *Archive) Start(spec Spec) (*Recording, error) {
	policy := recording.FailClosed
	if spec.FailOpen {
		policy = recording.FailOpen
	}
	session := spec.Session
	if session == "" {
		session = spec.Name
	}
	var live *replica.Live
	var tee func([]byte)
	if a.cfg.Replicas != nil {
		if live = a.cfg.Replicas.Live(spec.Name, session); live != nil {
			tee = live.Write
		}
	}
	rec, err := recording.New(recording.Config{
		Dir: a.cfg.Dir, SessionID: spec.Name, Width: spec.Width, Height: spec.Height, Term: spec.Term, Command: spec.Command,
		Title: "rampart session " + spec.Name, RecordInput: spec.RecordInput, Policy: policy,
		OnError: spec.Failed, MaxBytes: a.cfg.MaxBytes, MinFreeBytes: a.cfg.MinFreeBytes,
		FlushInterval: liveFlushInterval, Tee: tee,
	})
	if err != nil {
		live.Abort()
		return nil, err
	}
	return &Recording{r: rec, base: a.cfg.Dir, name: spec.Name, session: session, live: live, replicas: a.cfg.Replicas}, nil
}

// Recording is one running recording. Close says where it is, relative to
// the recordings directory, and its SHA-256.
type Recording struct {
	r             *recording.Recorder
	base          string
	name, session string
	live          *replica.Live
	replicas      *replica.Replicator
}

func (a *Recording) Output(p []byte) error { return a.r.Output(p) }
func (a *Recording) Input(p []byte) error  { return a.r.Input(p) }
func (a *Recording) Resize(w, h int) error { return a.r.Resize(w, h) }

// Close ends the recording: its SHA-256, its path relative to the
// recordings directory ("" without a file), and the recorder's error. A
// recording with a file is then replicated (in the background): its live
// copy is finished, and more pushed until the configured number of nodes
// hold it.
func (a *Recording) Close() (sha256, path string, err error) {
	sum, err := a.r.Close()
	rel, rerr := filepath.Rel(a.base, sum.Path)
	if rerr != nil || sum.Path == "" {
		rel = ""
	}
	if rel == "" || sum.SHA256 == "" || a.replicas == nil {
		a.live.Abort()
		return sum.SHA256, rel, err
	}
	a.replicas.AfterClose(replica.Closed{Name: a.name, Session: a.session, Path: rel, SHA256: sum.SHA256, Bytes: sum.Bytes, Live: a.live})
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

// OpenLocal opens the recording of a session this node carried. The path
// must be clean, relative and end in .cast, and it is opened through an
// os.Root, so neither ".." nor a symbolic link leads out of the directory.
func (a *Archive) OpenLocal(s *raftstore.Session) (io.ReadCloser, error) {
	if s.Node != a.cfg.NodeID {
		return nil, fmt.Errorf("session %s was carried by node %s, not by this node (%s)", s.ID, s.Node, a.cfg.NodeID)
	}
	p := s.RecordingPath
	if !filepath.IsLocal(p) || filepath.Clean(p) != p || filepath.Ext(p) != ".cast" {
		return nil, fmt.Errorf("session %s: %w", s.ID, errBadRecordingPath)
	}
	root, err := os.OpenRoot(a.cfg.Dir)
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

// Open returns a session's recording from whichever node holds a copy
// that matches what the cluster recorded for it (replica.Replicator.Open);
// without replicas, from the node that carried it.
func (a *Archive) Open(ctx context.Context, s *raftstore.Session) (io.ReadCloser, error) {
	if a.cfg.Replicas != nil {
		return a.cfg.Replicas.Open(ctx, s, s.ID)
	}
	if s.Node == a.cfg.NodeID {
		return a.OpenLocal(s)
	}
	_, node, err := a.cfg.Store.State().NodeByID(nil, s.Node)
	if err != nil {
		return nil, err
	}
	if node == nil || node.APIAddr == "" {
		return nil, fmt.Errorf("node %s is no longer a member of the cluster; its recordings are on its own disk", s.Node)
	}
	return a.fetch(ctx, s.Node, node.APIAddr, s.ID)
}

// OpenVerified is Open for the API: the checked copy and whose it is.
func (a *Archive) OpenVerified(ctx context.Context, s *raftstore.Session) (*replica.Copy, error) {
	if a.cfg.Replicas == nil {
		return nil, replica.ErrNoCopy
	}
	return a.cfg.Replicas.Open(ctx, s, s.ID)
}

// OpenHeld opens this node's copy h (replica.Replicator.OpenHeld).
func (a *Archive) OpenHeld(h raftstore.RecordingHolder) (io.ReadCloser, error) {
	if a.cfg.Replicas == nil {
		return nil, fmt.Errorf("recording %s: %w", h.Name, os.ErrNotExist)
	}
	return a.cfg.Replicas.OpenHeld(h)
}

// Receive takes a copy from another node (replica.Replicator.Receive).
func (a *Archive) Receive(ctx context.Context, from, name, session string, body io.Reader, trailer func() string) (*replica.Received, error) {
	if a.cfg.Replicas == nil {
		return nil, errors.New("this node keeps no copies of other nodes' recordings")
	}
	return a.cfg.Replicas.Receive(ctx, from, name, session, body, trailer)
}

// fetch asks node nodeID at apiAddr for a recording. The server must present
// the certificate of that very node, not just of some node.
func (a *Archive) fetch(ctx context.Context, nodeID, apiAddr, sessionID string) (io.ReadCloser, error) {
	cfg := a.cfg.TLS.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the node presented no certificate")
		}
		role, id, ok := api.Identity(cs.PeerCertificates[0])
		if !ok || role != api.RoleNode || id != nodeID {
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
