package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/rpc"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Config is what a node's store needs.
type Config struct {
	// NodeID names this node in raft; it must be stable across restarts.
	NodeID string
	// Dir holds the raft log, stable store and snapshots.
	Dir string
	// BindAddr is where the raft port listens; AdvertiseAddr is what other
	// nodes dial (defaults to BindAddr).
	BindAddr, AdvertiseAddr string
	// ServerTLS must require and verify client certificates from the cluster
	// CA; ClientTLS presents this node's certificate and trusts the same CA.
	ServerTLS, ClientTLS *tls.Config
	// MaxStale bounds how long a follower answers reads without hearing from
	// a leader (default 10s).
	MaxStale time.Duration
	// ApplyTimeout bounds one raft apply on the leader (default 10s).
	ApplyTimeout time.Duration
	Logger       *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PeerID names the node a verified peer certificate belongs to. Peers
	// are admitted only while that node is in the nodes table, so a removed
	// node's certificate opens nothing. Required.
	PeerID func(*x509.Certificate) (string, bool)
	// Metrics time applies (metrics.go); nil: unregistered ones.
	Metrics *Metrics
}

// Store is one node's replica: raft, the FSM, and forwarding to the leader.
type Store struct {
	cfg       Config
	logger    *slog.Logger
	raft      *raft.Raft
	fsm       *FSM
	mux       *mux
	forwarder *forwarder
	rpcServer *rpc.Server
	boltStore *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	// caughtUp is set once this node, after starting, has applied everything
	// the leader had committed; until then its reads are refused as stale.
	caughtUp atomic.Bool
}

// Open starts the node's raft instance over its data in cfg.Dir. It does not
// bootstrap: call Bootstrap on the first node, or have the leader add this one.
func Open(cfg Config) (*Store, error) {
	if cfg.NodeID == "" || cfg.Dir == "" || cfg.BindAddr == "" || cfg.PeerID == nil {
		return nil, errors.New("raftstore: node id, dir, bind address and PeerID are required")
	}
	if cfg.MaxStale == 0 {
		cfg.MaxStale = 10 * time.Second
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	var err error
	if err = os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	logger := cfg.Logger
	s := &Store{cfg: cfg, logger: logger}

	if s.fsm, err = NewFSM(logger); err != nil {
		return nil, err
	}
	if s.boltStore, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")}); err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	hlog := hclog.FromStandardLogger(slog.NewLogLogger(logger.Handler(), slog.LevelInfo), &hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
	if s.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, hlog); err != nil {
		s.boltStore.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if s.mux, err = newMux(cfg.BindAddr, cfg.ServerTLS, cfg.ClientTLS, logger); err != nil {
		s.boltStore.Close()
		return nil, err
	}
	if err := s.mux.setAdvertise(cfg.AdvertiseAddr); err != nil {
		s.mux.close()
		s.boltStore.Close()
		return nil, err
	}
	s.cfg.AdvertiseAddr = s.mux.advertise.String()
	s.forwarder = newForwarder(s.mux)
	s.rpcServer = rpc.NewServer()
	if err := s.rpcServer.RegisterName("Forward", &forwardService{s: s}); err != nil {
		s.mux.close()
		s.boltStore.Close()
		return nil, fmt.Errorf("register forwarding service: %w", err)
	}
	s.mux.forwardFn = s.serveForward
	s.mux.authorize = s.authorizePeer
	s.mux.checkServer = s.checkServerKey
	go s.mux.serve()

	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{s.mux}, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	if s.raft, err = raft.NewRaft(rc, s.fsm, s.boltStore, s.boltStore, s.snaps, transport); err != nil {
		transport.Close()
		s.boltStore.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return s, nil
}

// Bootstrap makes this node a one-member cluster. It is a no-op when the node
// already has raft state.
func (s *Store) Bootstrap() error {
	has, err := raft.HasExistingState(s.boltStore, s.boltStore, s.snaps)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if has {
		return nil
	}
	cfg := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(s.cfg.AdvertiseAddr), Suffrage: raft.Voter,
	}}}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// HasState reports whether this node has ever been part of a cluster.
func (s *Store) HasState() (bool, error) {
	return raft.HasExistingState(s.boltStore, s.boltStore, s.snaps)
}

// Close leaves raft running nowhere: it shuts raft down and closes the ports
// and files. It does not remove the node from the cluster.
func (s *Store) Close() error {
	err := s.raft.Shutdown().Error()
	s.forwarder.close()
	s.mux.close()
	if cerr := s.boltStore.Close(); err == nil {
		err = cerr
	}
	return err
}

// State returns the local replica for reads. Reads from it may trail the
// leader; see CheckFresh and ConsistentRead.
func (s *Store) State() *State { return s.fsm.State() }

// FSM exposes the state machine (blocking queries take it as StateSource).
func (s *Store) FSM() *FSM { return s.fsm }

// NodeID returns this node's id.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// IsLeader reports whether this node is the raft leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the id and raft address of the leader, empty when unknown.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitForLeader blocks until a leader is known or timeout passes.
func (s *Store) WaitForLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, addr := s.Leader(); addr != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrNoLeader
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Result is the outcome of an applied command.
type Result struct {
	// Index is the raft index the command was applied at.
	Index uint64
	value []byte
}

// NewResult builds a Result from a value, as the leader does (callers that
// apply commands without raft, such as tests and tools, use it).
func NewResult(index uint64, value any) (*Result, error) {
	b, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return &Result{Index: index, value: b}, nil
}

// Decode unmarshals the command's result value into v.
func (r *Result) Decode(v any) error {
	if len(r.value) == 0 || string(r.value) == "null" {
		return nil
	}
	return json.Unmarshal(r.value, v)
}

// Apply proposes cmd and waits until it is applied (or refused). On a follower
// the command is forwarded to the leader. While there is no leader (an
// election) it waits and retries until ctx ends. A command whose outcome is
// unknown (the leader was lost after it was sent) returns an error; callers
// must treat that write as possibly applied.
func (s *Store) Apply(ctx context.Context, cmd Command) (*Result, error) {
	buf, err := Encode(cmd)
	if err != nil {
		return nil, err
	}
	return s.ApplyRaw(ctx, buf)
}

// ApplyRaw is Apply for an already framed command. The leader decodes and
// validates it before it enters the log, so a corrupt or unknown command is
// refused here and never reaches any FSM; it also refuses (admit) a command
// whose time is too far from the leader's clock.
func (s *Store) ApplyRaw(ctx context.Context, buf []byte) (*Result, error) {
	defer s.observeApply(time.Now())
	var res *Result
	err := s.withLeader(ctx, false, func() error {
		var err error
		res, err = s.applyLocal(buf)
		return err
	}, func(addr string) error {
		reply, err := s.forwarder.call(addr, "Apply", &ForwardArgs{Data: buf})
		if err == nil {
			res = &Result{Index: reply.Index, value: reply.Value}
		}
		return err
	})
	return res, err
}

// withLeader runs local on the leader or remote(addr) against the leader,
// retrying while there is no leader or the one asked has just stepped down.
// An idempotent operation is also retried when its outcome is unknown.
func (s *Store) withLeader(ctx context.Context, idempotent bool, local func() error, remote func(addr string) error) error {
	backoff := 10 * time.Millisecond
	for {
		var err error
		if s.IsLeader() {
			err = local()
		} else if _, addr := s.Leader(); addr == "" {
			err = ErrNoLeader
		} else {
			err = remote(addr)
		}
		retry := errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader) || errors.Is(err, errForwardUnsent) ||
			(idempotent && errors.Is(err, ErrOutcomeUnknown))
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ErrNoLeader, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// applyLocal validates and proposes buf on this node, which must lead.
func (s *Store) applyLocal(buf []byte) (*Result, error) {
	cmd, err := Decode(buf)
	if err != nil {
		return nil, fmt.Errorf("refused before entering the log: %w", err)
	}
	if err := admit(cmd, s.cfg.Now()); err != nil {
		return nil, err
	}
	f := s.raft.Apply(buf, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, translateRaftErr(err)
	}
	ar, ok := f.Response().(*ApplyResult)
	if !ok || ar == nil {
		return nil, fmt.Errorf("apply: unexpected FSM response %T", f.Response())
	}
	if ar.Err != nil {
		return nil, ar.Err
	}
	value, err := json.Marshal(ar.Value)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return &Result{Index: ar.Index, value: value}, nil
}

// translateRaftErr maps raft's errors onto this package's sentinels.
func translateRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// The entry may or may not commit: the caller must not assume either.
		return fmt.Errorf("%w (%v)", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: raft enqueue timed out", ErrNoLeader)
	}
	return err
}

// CheckFresh refuses (ErrStaleRead) when this node is a follower that has not
// heard from a leader within MaxStale. Security decisions call it before
// trusting a local read.
//
// A follower that has just started is also refused until it has applied
// everything the leader had committed when they first spoke: its replica
// could otherwise still hold, say, a token revoked while it was down.
func (s *Store) CheckFresh() error {
	if s.IsLeader() {
		return nil
	}
	last := s.raft.LastContact()
	if last.IsZero() || s.cfg.Now().Sub(last) > s.cfg.MaxStale {
		return ErrStaleRead
	}
	if !s.caughtUp.Load() {
		commit := s.raft.CommitIndex()
		if commit == 0 || s.raft.AppliedIndex() < commit {
			return fmt.Errorf("%w (still catching up after start)", ErrStaleRead)
		}
		s.caughtUp.Store(true)
	}
	return nil
}

// ConsistentRead waits until the local replica holds every write the leader
// had committed when it was called (the ReadIndex protocol, with a raft
// barrier confirming leadership). Reads after it are linearizable.
func (s *Store) ConsistentRead(ctx context.Context) error {
	var idx uint64
	err := s.withLeader(ctx, true, func() error {
		var err error
		idx, err = s.readIndexLocal()
		return err
	}, func(addr string) error {
		reply, err := s.forwarder.call(addr, "ReadIndex", &ForwardArgs{})
		if err == nil {
			idx = reply.Index
		}
		return err
	})
	if err != nil {
		return err
	}
	for s.fsm.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("consistent read: waiting for index %d: %w", idx, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// WaitApplied blocks until this replica has applied index, so that a caller
// who wrote through the leader (from a follower) reads its own write.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	for s.fsm.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", index, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// readIndexLocal commits a barrier, which proves this node still leads and
// that every command before it is applied, and returns the index of the last
// applied command: a reader that has applied up to it sees every write
// acknowledged before the read began.
func (s *Store) readIndexLocal() (uint64, error) {
	if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		return 0, translateRaftErr(err)
	}
	return s.fsm.AppliedIndex(), nil
}

// authorizePeer admits a node-to-node connection from the node a verified
// certificate names, if that node is in the nodes table and the certificate
// is for the key recorded when it joined. A node with an empty
// table (it has just joined and has not received the log yet) admits any
// certificate from the cluster CA for raft, so that the leader can reach it;
// forwarding always needs membership.
func (s *Store) authorizePeer(proto byte, cert *x509.Certificate) error {
	id, ok := s.cfg.PeerID(cert)
	if !ok {
		return fmt.Errorf("%w: certificate names no node", ErrPeerRefused)
	}
	st := s.State()
	_, n, err := st.NodeByID(nil, id)
	if err != nil {
		return err
	}
	if n != nil {
		if !n.HoldsKey(cert.PublicKey) {
			return fmt.Errorf("%w: node %q: the certificate is not for the key recorded when the node joined", ErrPeerRefused, id)
		}
		return nil
	}
	if proto == protoRaft {
		if _, nodes, err := st.Nodes(nil); err == nil && len(nodes) == 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: node %q", ErrPeerRefused, id)
}

// checkServerKey refuses a node this node dialled whose certificate names a
// member of the nodes table but is not for that member's recorded key (the
// certificate of a removed node of the same id). A node it does not know is
// let through: a replica still replaying its log knows no members yet.
func (s *Store) checkServerKey(cert *x509.Certificate) error {
	id, ok := s.cfg.PeerID(cert)
	if !ok {
		return fmt.Errorf("%w: certificate names no node", ErrPeerRefused)
	}
	_, n, err := s.State().NodeByID(nil, id)
	if err != nil {
		return err
	}
	if n != nil && !n.HoldsKey(cert.PublicKey) {
		return fmt.Errorf("%w: node %q: the certificate is not for the key recorded when the node joined", ErrPeerRefused, id)
	}
	return nil
}
