package replica

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

// ErrNoCopy: no node the cluster knows of holds the recording.
var ErrNoCopy = errors.New("no node holds a copy of this recording")

// Copy is a verified copy of a recording in a temporary file, rewound.
// Close removes it.
type Copy struct {
	*os.File
	// Holder is the copy it was read from.
	Holder raftstore.RecordingHolder
}

// Close closes and removes the temporary file.
func (c *Copy) Close() error {
	err := c.File.Close()
	_ = os.Remove(c.File.Name())
	return err
}

// Holders lists the copies of recording name: this node's first, then
// complete ones before partial ones. A session recorded before holders were
// (no rows) has one: the node that carried it.
func (r *Replicator) Holders(s *raftstore.Session, name string) []raftstore.RecordingHolder {
	var out []raftstore.RecordingHolder
	if _, hs, err := r.cfg.Store.State().RecordingHoldersOf(nil, s.ID); err == nil {
		for _, h := range hs {
			if h.Name == name {
				out = append(out, *h)
			}
		}
	}
	if len(out) == 0 && name == s.ID && s.RecordingPath != "" && s.RecordingSHA256 != "" {
		out = append(out, raftstore.RecordingHolder{Name: name, Session: s.ID, Node: s.Node, Path: s.RecordingPath,
			SHA256: s.RecordingSHA256, Bytes: -1})
	}
	rank := func(h raftstore.RecordingHolder) int {
		switch {
		case h.Node == r.cfg.NodeID && !h.Partial:
			return 0
		case !h.Partial:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(a, b raftstore.RecordingHolder) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

// Open returns a copy of recording name of session s that hashes to what
// the cluster recorded for it, from this node's disk or the first other
// holder that answers. A complete copy must match the recording's digest
// (the session's for its first recording, otherwise its carrier's holder
// row), whatever its own holder row says, and the bytes read must hash to
// that row; a partial copy, to its row. A copy that does not match is
// skipped (and logged) and the next holder tried; if every copy read fails
// to match, the error wraps recording.ErrDigestMismatch.
func (r *Replicator) Open(ctx context.Context, s *raftstore.Session, name string) (*Copy, error) {
	holders := r.Holders(s, name)
	if len(holders) == 0 {
		return nil, ErrNoCopy
	}
	want := r.recordedDigest(nil, s.ID, s.Node, name)
	if name == s.ID && s.RecordingSHA256 != "" {
		want = s.RecordingSHA256
	}
	var errs []error
	for _, h := range holders {
		var c *Copy
		var err error
		if !h.Partial && want != "" && h.SHA256 != want {
			err = fmt.Errorf("%w: its holder row says %s, the recording's is %s", recording.ErrDigestMismatch, h.SHA256, want)
		} else {
			c, err = r.openCopy(ctx, h)
		}
		if err == nil {
			return c, nil
		}
		if errors.Is(err, recording.ErrDigestMismatch) {
			r.cfg.Logger.Warn("recording copy does not match its recorded hash", "session", s.ID, "recording", name, "holder", h.Node, "err", err)
		}
		errs = append(errs, fmt.Errorf("node %s: %w", h.Node, err))
	}
	return nil, errors.Join(errs...)
}

// openCopy reads one holder's copy into a temporary file and checks it.
func (r *Replicator) openCopy(ctx context.Context, h raftstore.RecordingHolder) (*Copy, error) {
	var src io.ReadCloser
	var err error
	if h.Node == r.cfg.NodeID {
		src, err = r.OpenHeld(h)
	} else {
		src, err = r.fetch(ctx, h)
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	f, err := os.CreateTemp("", "rampart-recording-*.cast")
	if err != nil {
		return nil, err
	}
	c := &Copy{File: f, Holder: h}
	hash := sha256.New()
	in := src.(io.Reader)
	if r.cfg.MaxBytes > 0 {
		in = io.LimitReader(src, r.cfg.MaxBytes+1)
	}
	n, err := io.Copy(io.MultiWriter(f, hash), in)
	if err == nil && r.cfg.MaxBytes > 0 && n > r.cfg.MaxBytes {
		err = ErrTooLarge
	}
	if err == nil {
		if got := hex.EncodeToString(hash.Sum(nil)); got != h.SHA256 {
			err = fmt.Errorf("%w: %d bytes hash to %s, recorded %s", recording.ErrDigestMismatch, n, got, h.SHA256)
		}
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// OpenHeld opens this node's copy h. The path must be clean, relative and
// end in .cast, and it is opened through an os.Root, so neither ".." nor a
// symbolic link leads out of the recordings directory.
func (r *Replicator) OpenHeld(h raftstore.RecordingHolder) (io.ReadCloser, error) {
	p := h.Path
	if h.Node != r.cfg.NodeID || !localCast(p) {
		return nil, fmt.Errorf("recording %s: not a copy of this node's", h.Name)
	}
	root, err := os.OpenRoot(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open the recordings directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("recording %s: not a regular file", h.Name)
	}
	return f, nil
}

// fetch asks holder h's node for its copy. Connecting and the answer's
// headers are bounded (the client's timeouts); the transfer runs as long as
// ctx allows.
func (r *Replicator) fetch(ctx context.Context, h raftstore.RecordingHolder) (io.ReadCloser, error) {
	_, node, err := r.cfg.Store.State().NodeByID(nil, h.Node)
	if err != nil {
		return nil, err
	}
	if node == nil || node.APIAddr == "" {
		return nil, fmt.Errorf("node %s is no longer a member of the cluster", h.Node)
	}
	u := "https://" + node.APIAddr + InternalPath + url.PathEscape(h.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client(h.Node).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return resp.Body, nil
}

// localCast reports whether p is a clean relative path to a .cast file.
func localCast(p string) bool {
	return filepath.IsLocal(p) && filepath.Clean(p) == p && filepath.Ext(p) == ".cast"
}
