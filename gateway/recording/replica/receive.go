package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

var (
	// ErrTooLarge: the body passed the node's recording size cap.
	ErrTooLarge = errors.New("the copy is larger than this node keeps (recording.max_session_bytes)")
	// ErrNotSession: the recording's name does not belong to the session
	// named with it.
	ErrNotSession = errors.New("the recording's name is not of that session")
)

// Receive takes a copy of recording name of session from node from: body
// is read to its end, then trailer (called once the body has ended) gives
// the SHA-256 the sender computed over it. A copy whose digest matches is
// kept; a body that broke off (the sender was lost mid-session) is kept as
// partial with the digest of what came. Either way this node is recorded
// as a holder in raft and the copy audited.
func (r *Replicator) Receive(ctx context.Context, from, name, session string, body io.Reader, trailer func() string) (*Received, error) {
	if err := recording.ValidateSessionID(name); err != nil {
		return nil, err
	}
	if name != session && (len(name) <= len(session) || name[:len(session)+1] != session+"-") {
		return nil, ErrNotSession
	}
	rel := filepath.Join(dayDir(r.cfg.Now()), name+".cast")
	// A node that has carried no session yet has no recordings directory.
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("make the recordings directory: %w", err)
	}
	root, err := os.OpenRoot(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open the recordings directory: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
		return nil, fmt.Errorf("make the replicas directory: %w", err)
	}
	tmp := rel + ".part"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create the copy: %w", err)
	}
	h := sha256.New()
	limit := r.cfg.MaxBytes
	src := body
	if limit > 0 {
		src = io.LimitReader(body, limit+1)
	}
	n, cerr := io.Copy(io.MultiWriter(f, h), src)
	werr := f.Sync()
	if err := f.Close(); werr == nil {
		werr = err
	}
	var sent string
	if cerr == nil {
		sent = trailer()
	}
	sum := hex.EncodeToString(h.Sum(nil))
	drop := func(err error) (*Received, error) {
		_ = root.Remove(tmp)
		return nil, err
	}
	switch {
	case werr != nil:
		return drop(fmt.Errorf("write the copy: %w", werr))
	case limit > 0 && n > limit:
		return drop(ErrTooLarge)
	case cerr == nil && sent != "" && sent != sum:
		return drop(fmt.Errorf("%w (%d bytes hash to %s, sent %s)", recording.ErrDigestMismatch, n, sum, sent))
	case n == 0:
		return drop(fmt.Errorf("the copy ended before any byte: %w", cerr))
	}
	partial := cerr != nil || sent == ""
	if err := root.Rename(tmp, rel); err != nil {
		return drop(fmt.Errorf("keep the copy: %w", err))
	}
	got := &Received{Node: r.cfg.NodeID, SHA256: sum, Bytes: n, Partial: partial}
	// The sender may be gone (that is why the copy is partial): the
	// request's context may be too, and the holder must still be recorded.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := r.cfg.Store.Apply(actx, &raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{
		Name: name, Session: session, Node: r.cfg.NodeID, Path: rel, SHA256: sum, Bytes: n, Partial: partial, At: r.cfg.Now(),
	}}); err != nil {
		return nil, fmt.Errorf("record the copy in the cluster: %w", err)
	}
	r.cfg.Logger.Info("recording copy kept", "session", session, "recording", name, "from_node", from, "bytes", n, "partial", partial)
	fields := map[string]string{"session": session, "recording": name, "from_node": from, "node": r.cfg.NodeID,
		"sha256": sum, "bytes": itoa(n), "partial": fmt.Sprint(partial)}
	if partial {
		fields["error"] = fmt.Sprint(cerr)
	}
	r.audit(EventRecordingReplicate, fields)
	return got, nil
}
