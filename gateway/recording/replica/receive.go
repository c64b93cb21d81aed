package replica

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

var (
	// ErrTooLarge: the body passed the node's recording size cap.
	ErrTooLarge = errors.New("the copy is larger than this node keeps (recording.max_session_bytes)")
	// ErrNotSession: the recording's name does not belong to the session
	// named with it.
	ErrNotSession = errors.New("the recording's name is not of that session")
	// ErrUnknownSession: the cluster has no session of that id.
	ErrUnknownSession = errors.New("the cluster has no such session")
	// ErrNotCarrier: a copy came from a node other than the one that
	// carried the session; only that node sends copies of its recordings.
	ErrNotCarrier = errors.New("only the node that carried the session sends copies of its recordings")
	// ErrNoDigest: a complete copy arrived, but the cluster has recorded no
	// SHA-256 of that recording to check it against.
	ErrNoDigest = errors.New("the cluster has recorded no SHA-256 of that recording")
	// ErrHeldAlready: this node holds a complete copy of the recording
	// with another digest; a complete copy is never replaced.
	ErrHeldAlready = errors.New("this node holds a complete copy of that recording already")
	// ErrSuperseded: a newer copy of the same recording arrived while this
	// one was being received; the newer one is kept.
	ErrSuperseded = errors.New("a newer copy of that recording arrived")
	// ErrBusy: the peer is sending this node as many copies as it takes
	// from one node at once.
	ErrBusy = errors.New("this node takes no more copies from that node at the moment")
	// ErrNoSpace: taking the copy would leave the recordings disk below
	// its free-space floor (recording.min_free_mib).
	ErrNoSpace = errors.New("this node's recordings disk is at its free-space floor")
)

// DefaultMaxReceivesPerPeer is Config.MaxReceivesPerPeer's default.
const DefaultMaxReceivesPerPeer = 256

// stateWait bounds how long Receive waits for this node's replicated state
// to show what the sender wrote before it (the session, the recording's
// digest): the sender applied it, but this node may apply it a moment later.
const stateWait = 10 * time.Second

// freeCheckEvery is how many bytes a copy may grow between two checks of
// the disk's free space.
const freeCheckEvery = 4 << 20

// Interrupter is implemented by a body whose blocked reads can be ended
// from another goroutine (the HTTP handler sets a read deadline in the
// past). Receive interrupts a copy that a newer one of the same recording
// supersedes; a body without it is dropped when it next ends.
type Interrupter interface {
	Interrupt()
}

// receipt is one copy being received.
type receipt struct {
	from       string
	body       io.Reader
	superseded bool // guarded by Replicator.mu
}

// Receive takes a copy of recording name of session from node from: body
// is read to its end, then trailer (called once the body has ended) gives
// the SHA-256 the sender computed over it.
//
// Only the node that carried the session may send one, and a complete copy
// must hash to the digest the cluster recorded for that recording (the
// session's, or its carrier's holder row): a node certificate alone
// replaces nothing. A body that broke off (the sender was lost mid-session)
// is kept as partial with the digest of what came, unless this node holds a
// complete copy already; a complete copy is never replaced. The copy is
// written to a file of its own, recorded in raft, and only then put in
// place; a newer copy of the same recording supersedes one still arriving.
// Either way this node is recorded as a holder in raft and the copy
// audited.
func (r *Replicator) Receive(ctx context.Context, from, name, session string, body io.Reader, trailer func() string) (*Received, error) {
	if err := recording.ValidateSessionID(name); err != nil {
		return nil, err
	}
	if name != session && (len(name) <= len(session) || name[:len(session)+1] != session+"-") {
		return nil, ErrNotSession
	}
	sess := r.waitSession(ctx, session)
	switch {
	case sess == nil:
		return nil, ErrUnknownSession
	case from != sess.Node || sess.Node == r.cfg.NodeID:
		// This node's own recordings are written by its recorder alone.
		return nil, ErrNotCarrier
	}
	// A node that has carried no session yet has no recordings directory
	// (and its free space is that of the directory's filesystem).
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("make the recordings directory: %w", err)
	}
	if err := r.checkFree(); err != nil {
		return nil, err
	}
	rc, err := r.begin(from, name, body)
	if err != nil {
		return nil, err
	}
	defer r.end(name, rc)

	// A copy goes in the folder of the day its session started, so a live
	// copy and the push that may follow it have one name.
	rel := filepath.Join(dayDir(sess.Start), name+".cast")
	root, err := os.OpenRoot(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open the recordings directory: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
		return nil, fmt.Errorf("make the replicas directory: %w", err)
	}
	// A file of its own: two copies of one name never write one file.
	tmp := rel + "." + rand.Text() + ".part"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create the copy: %w", err)
	}
	h := sha256.New()
	limit := r.cfg.MaxBytes
	src := body
	if limit > 0 {
		src = io.LimitReader(body, limit+1)
	}
	fw := &floorWriter{w: f, check: r.checkFree}
	n, cerr := io.Copy(io.MultiWriter(fw, h), src)
	werr := fw.err
	if werr == nil {
		werr = f.Sync()
	}
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
	case errors.Is(werr, ErrNoSpace):
		return drop(werr)
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
	if !partial {
		want := r.waitDigest(ctx, sess, name)
		switch {
		case want == "":
			return drop(ErrNoDigest)
		case want != sum:
			return drop(fmt.Errorf("%w (%d bytes hash to %s, the cluster recorded %s)", recording.ErrDigestMismatch, n, sum, want))
		}
	}
	hold := raftstore.RecordingHolder{Name: name, Session: session, Node: r.cfg.NodeID, Path: rel, SHA256: sum, Bytes: n,
		Partial: partial, At: r.cfg.Now()}
	got, err := r.keep(ctx, rc, root, tmp, hold)
	if err != nil {
		return drop(err)
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

// keep records copy h in raft, then puts its file tmp in place: a row that
// says complete is never followed by a partial file, and a complete file is
// never overwritten. A copy superseded meanwhile, or one this node holds
// complete already, is not kept (the same complete copy again is not an
// error).
func (r *Replicator) keep(ctx context.Context, rc *receipt, root *os.Root, tmp string, h raftstore.RecordingHolder) (*Received, error) {
	r.commit.Lock()
	defer r.commit.Unlock()
	r.mu.Lock()
	superseded := rc.superseded
	r.mu.Unlock()
	if superseded {
		return nil, ErrSuperseded
	}
	_, old, err := r.cfg.Store.State().RecordingHolder(nil, h.Name, r.cfg.NodeID)
	if err != nil {
		return nil, err
	}
	if old != nil && !old.Partial {
		if !h.Partial && old.SHA256 == h.SHA256 {
			_ = root.Remove(tmp)
			return &Received{Node: r.cfg.NodeID, SHA256: old.SHA256, Bytes: old.Bytes}, nil
		}
		return nil, ErrHeldAlready
	}
	// The sender may be gone (that is why the copy is partial): the
	// request's context may be too, and the holder must still be recorded.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := r.cfg.Store.Apply(actx, &raftstore.RecordingHolderPut{Holder: h}); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			return nil, ErrHeldAlready
		}
		return nil, fmt.Errorf("record the copy in the cluster: %w", err)
	}
	if err := root.Rename(tmp, h.Path); err != nil {
		// The row names a file that is not there: take it back, so nobody
		// is sent to it (a reader would refuse it anyway: it is checked).
		if _, derr := r.cfg.Store.Apply(actx, &raftstore.RecordingHolderDelete{Name: h.Name, Node: h.Node}); derr != nil {
			r.cfg.Logger.Error("recording copy recorded but not kept", "recording", h.Name, "err", derr)
		}
		return nil, fmt.Errorf("keep the copy: %w", err)
	}
	return &Received{Node: r.cfg.NodeID, SHA256: h.SHA256, Bytes: h.Bytes, Partial: h.Partial}, nil
}

// begin counts a copy arriving from peer from and makes it the newest of
// its name: an older one still arriving is superseded (and interrupted).
func (r *Replicator) begin(from, name string, body io.Reader) (*receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perPeer[from] >= r.cfg.MaxReceivesPerPeer {
		return nil, ErrBusy
	}
	r.perPeer[from]++
	if old := r.receiving[name]; old != nil {
		old.superseded = true
		if in, ok := old.body.(Interrupter); ok {
			in.Interrupt()
		}
	}
	rc := &receipt{from: from, body: body}
	r.receiving[name] = rc
	return rc, nil
}

func (r *Replicator) end(name string, rc *receipt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perPeer[rc.from]--; r.perPeer[rc.from] <= 0 {
		delete(r.perPeer, rc.from)
	}
	if r.receiving[name] == rc {
		delete(r.receiving, name)
	}
}

// checkFree refuses a copy when the recordings disk is at its floor.
func (r *Replicator) checkFree() error {
	if r.cfg.MinFreeBytes == 0 {
		return nil
	}
	free, err := r.cfg.FreeSpace()
	if err != nil {
		return fmt.Errorf("free space of the recordings disk: %w", err)
	}
	if free < r.cfg.MinFreeBytes {
		return ErrNoSpace
	}
	return nil
}

// floorWriter writes a copy and checks the disk's free space every
// freeCheckEvery bytes; past the floor it fails with ErrNoSpace.
type floorWriter struct {
	w     io.Writer
	check func() error
	since int
	err   error
}

func (f *floorWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.since += len(p); f.since >= freeCheckEvery {
		f.since = 0
		if err := f.check(); err != nil {
			f.err = err
			return 0, err
		}
	}
	n, err := f.w.Write(p)
	if err != nil {
		f.err = err
	}
	return n, err
}

// waitSession returns the session of id, waiting up to stateWait for this
// node to apply it; nil when it does not appear.
func (r *Replicator) waitSession(ctx context.Context, id string) *raftstore.Session {
	var sess *raftstore.Session
	r.waitState(ctx, func(ws memdb.WatchSet) bool {
		_, sess, _ = r.cfg.Store.State().SessionByID(ws, id)
		return sess != nil
	})
	return sess
}

// waitDigest returns the SHA-256 the cluster recorded for recording name of
// sess, waiting up to stateWait for it (the carrier records its own copy
// before it ends a live copy or pushes one); "" when none appears.
func (r *Replicator) waitDigest(ctx context.Context, sess *raftstore.Session, name string) string {
	var want string
	r.waitState(ctx, func(ws memdb.WatchSet) bool {
		want = r.recordedDigest(ws, sess.ID, sess.Node, name)
		return want != ""
	})
	return want
}

// recordedDigest is the SHA-256 the cluster recorded for recording name of
// session id, carried by node: the session's own for its first recording
// (set when it closed), otherwise the carrier's complete holder row; "" if
// neither is recorded yet.
func (r *Replicator) recordedDigest(ws memdb.WatchSet, id, node, name string) string {
	st := r.cfg.Store.State()
	if name == id {
		if _, s, _ := st.SessionByID(ws, id); s != nil && s.RecordingSHA256 != "" {
			return s.RecordingSHA256
		}
	}
	if _, h, _ := st.RecordingHolder(ws, name, node); h != nil && !h.Partial {
		return h.SHA256
	}
	return ""
}

// waitState calls found until it reports true, each time the state it read
// changes, for up to stateWait.
func (r *Replicator) waitState(ctx context.Context, found func(ws memdb.WatchSet) bool) {
	ctx, cancel := context.WithTimeout(ctx, stateWait)
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		if found(ws) || ws.WatchCtx(ctx) != nil {
			return
		}
	}
}
