// Package replica copies each session recording to other nodes of the
// cluster over its mutual TLS, checks the copy's SHA-256 where it lands, and
// records the nodes that hold a checked copy in raft.
//
// A recording is streamed to one other node while it is written (Live), so
// a node lost mid-session loses at most what its recorder had not flushed;
// when it closes, further copies are pushed until the cluster holds
// Config.Replicas of them. Retain deletes this node's copies past their age
// or past the node's size budget, audited.
package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Audit event types this package emits.
const (
	// EventRecordingReplicate: a node checked a copy of a recording and
	// holds it (fields: session, recording, from_node, node, sha256,
	// bytes, partial).
	EventRecordingReplicate = "recording.replicate"
	// EventRecordingReplicateFail: a closed recording has fewer copies than
	// configured after every other node was tried (fields: session,
	// recording, node, copies, want).
	EventRecordingReplicateFail = "recording.replicate_fail"
	// EventRecordingDelete: retention deleted a node's copy (fields:
	// session, recording, node, reason ("age" or "size"), bytes, sha256).
	EventRecordingDelete = "recording.delete"
)

// Header and trailer names of the internal replication request.
const (
	// TrailerSHA256 is sent after the body: the SHA-256 the sender computed
	// over it. A body that ends without it is a stream that broke.
	TrailerSHA256 = "Rampart-Recording-Sha256"
)

// InternalPath is the node-only route a copy is sent to (PUT) and read
// from (GET); the recording's name follows it.
const InternalPath = "/v1/internal/recordings/"

// Store is what the replicator needs of the replicated state.
type Store interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// Auditor records audit events without blocking.
type Auditor interface {
	Record(typ, actor string, fields map[string]string)
}

// Config is what a Replicator is built from.
type Config struct {
	// Dir is the node's recordings directory; copies received from other
	// nodes go under Dir/replicas/.
	Dir    string
	NodeID string
	Store  Store
	// TLS is the node's client TLS configuration (its certificate, the
	// cluster CA); each request pins the peer's node identity.
	TLS *tls.Config
	// Replicas is how many nodes should hold each recording, this one
	// included; less than 2 means no copies.
	Replicas int
	// MaxBytes caps a received copy (recording.max_session_bytes); 0: none.
	MaxBytes int64
	// MinFreeBytes is the recordings disk's free-space floor
	// (recording.min_free_mib): a copy is refused (ErrNoSpace) when taking
	// it would pass below it. 0: none.
	MinFreeBytes uint64
	// FreeSpace reports the free bytes of the recordings disk; nil:
	// recording.FreeSpace of Dir.
	FreeSpace func() (uint64, error)
	// MaxReceivesPerPeer caps the copies one peer may be sending this node
	// at once (live copies last as long as their sessions); past it a copy
	// is refused with ErrBusy. 0: DefaultMaxReceivesPerPeer.
	MaxReceivesPerPeer int
	// MaxAge and MaxTotalBytes are the node's retention (0: none).
	MaxAge        time.Duration
	MaxTotalBytes int64
	Audit         Auditor
	Logger        *slog.Logger
	Now           func() time.Time
}

// Replicator replicates this node's recordings and receives the others'.
type Replicator struct {
	cfg Config
	// bg owns the goroutines that finish copies after a recording closes;
	// Close cancels base and waits for them.
	bg     sync.WaitGroup
	base   context.Context
	cancel context.CancelFunc

	// mu guards the copies being received: the newest of each name, and
	// how many each peer is sending.
	mu        sync.Mutex
	receiving map[string]*receipt
	perPeer   map[string]int
	// commit serialises the step that records a received copy in raft and
	// puts its file in place, so the order of the rows is that of the
	// files.
	commit sync.Mutex
}

// New returns a Replicator.
func New(cfg Config) *Replicator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxReceivesPerPeer <= 0 {
		cfg.MaxReceivesPerPeer = DefaultMaxReceivesPerPeer
	}
	if cfg.FreeSpace == nil {
		dir := cfg.Dir
		cfg.FreeSpace = func() (uint64, error) { return recording.FreeSpace(dir) }
	}
	base, cancel := context.WithCancel(context.Background())
	return &Replicator{cfg: cfg, base: base, cancel: cancel, receiving: map[string]*receipt{}, perPeer: map[string]int{}}
}

// Wait waits for copies in flight to finish.
func (r *Replicator) Wait() { r.bg.Wait() }

// Close gives up copies still in flight (the node is stopping) and waits
// for their goroutines.
func (r *Replicator) Close() {
	r.cancel()
	r.bg.Wait()
}

// errNoPeer: no other node to copy to.
var errNoPeer = errors.New("no other node to copy the recording to")

// peers returns the other nodes in the order name's copies go to them: a
// rendezvous hash, so copies of different sessions spread over the
// cluster while every node agrees on the order of one.
func (r *Replicator) peers(name string) []*raftstore.Node {
	_, nodes, err := r.cfg.Store.State().Nodes(nil)
	if err != nil {
		return nil
	}
	var out []*raftstore.Node
	for _, n := range nodes {
		if n.ID != r.cfg.NodeID && n.APIAddr != "" {
			out = append(out, n)
		}
	}
	score := func(n *raftstore.Node) uint64 {
		h := fnv.New64a()
		h.Write([]byte(name + "\x00" + n.ID))
		return h.Sum64()
	}
	slices.SortFunc(out, func(a, b *raftstore.Node) int {
		sa, sb := score(a), score(b)
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	return out
}

// Closed is what the recorder tells the replicator when a recording closes.
type Closed struct {
	Name, Session string
	// Path is relative to the recordings directory.
	Path   string
	SHA256 string
	Bytes  int64
	// Live is the recording's live stream (nil without one).
	Live *Live
}

// AfterClose records this node as a holder of a closed recording, finishes
// its live copy and pushes more until Replicas nodes hold it. It returns at
// once; the work runs in the background (Wait).
func (r *Replicator) AfterClose(c Closed) {
	r.bg.Go(func() { r.afterClose(c) })
}

func (r *Replicator) afterClose(c Closed) {
	ctx, cancel := context.WithTimeout(r.base, 15*time.Minute)
	defer cancel()
	log := r.cfg.Logger.With("session", c.Session, "recording", c.Name)
	if _, err := r.cfg.Store.Apply(ctx, &raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{
		Name: c.Name, Session: c.Session, Node: r.cfg.NodeID, Path: c.Path, SHA256: c.SHA256, Bytes: c.Bytes, At: r.cfg.Now(),
	}}); err != nil {
		log.Error("record this node as the recording's holder", "err", err)
	}
	held := map[string]bool{r.cfg.NodeID: true}
	if c.Live != nil {
		if peer, err := c.Live.Finish(ctx, c.SHA256); err == nil {
			held[peer] = true
		} else {
			log.Warn("live copy of the recording failed; copying it whole", "peer_node", c.Live.peer, "err", err)
		}
	}
	if r.cfg.Replicas < 2 {
		return
	}
	for _, p := range r.peers(c.Name) {
		if len(held) >= r.cfg.Replicas {
			return
		}
		if held[p.ID] {
			continue
		}
		if err := r.push(ctx, p, c); err != nil {
			log.Warn("copy the recording to another node", "peer_node", p.ID, "err", err)
			continue
		}
		held[p.ID] = true
	}
	if len(held) < r.cfg.Replicas {
		log.Warn("recording has fewer copies than configured", "copies", len(held), "want", r.cfg.Replicas)
		r.audit(EventRecordingReplicateFail, map[string]string{"session": c.Session, "recording": c.Name, "node": r.cfg.NodeID,
			"copies": itoa(int64(len(held))), "want": itoa(int64(r.cfg.Replicas))})
	}
}

func (r *Replicator) audit(typ string, fields map[string]string) {
	if r.cfg.Audit != nil {
		r.cfg.Audit.Record(typ, "node:"+r.cfg.NodeID, fields)
	}
}
