package authority

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// IDs of the first target host CA and the first node host CA.
const (
	HostCAID     = "host-ca-1"
	NodeHostCAID = "node-host-ca-1"
)

// ErrNoActiveCA: a chain of CA keys has keys but none signs; a new one is
// not made in their place (it would sign unstaged).
var ErrNoActiveCA = errors.New("no active CA key")

// createAttempts bounds create-on-first-use: the first look confirms the
// CA is missing on the leader, each later one follows a lost race.
const createAttempts = 3

// Store is what the authority needs of the replicated store (a
// *raftstore.Store).
type Store interface {
	// State is the local replica (also what raftstore.BlockingQuery watches).
	State() *raftstore.State
	// Apply commits a command through the leader.
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	// ConsistentRead waits until the replica holds every committed write.
	ConsistentRead(ctx context.Context) error
}

// Config is what an Authority is built from.
type Config struct {
	// NodeID names the node in its host certificate's key id.
	NodeID string
	Store  Store
	// KEK seals and unseals every CA key.
	KEK *ca.KEK
	// HostNames are the principals of the node's own host certificate (what
	// users type to reach the node), taken as given.
	HostNames []string
	// Now is the clock (time.Now when nil); Logger may be nil (discarded).
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics count issuances; nil: unregistered ones.
	Metrics *Metrics
}

// Authority holds a node's CAs: it caches unsealed CA keys in memory and
// derives the inner servers' host keys. Its methods are safe for concurrent
// use.
type Authority struct {
	nodeID    string
	store     Store
	kek       *ca.KEK
	hostNames []string
	now       func() time.Time
	logger    *slog.Logger
	metrics   *Metrics

	mu  sync.Mutex
	cas map[string]*ca.SSHCA // by CA record id
	// tlsUnsealed is the cluster TLS CA certificate whose key Unsealed
	// has opened with the KEK.
	tlsUnsealed string
	// inner caches the inner server's signers per server version, name
	// typed and host CA, so that a burst of jumps signs once.
	inner map[innerKey]innerSigners
}

// New builds an Authority.
func New(cfg Config) *Authority {
	a := &Authority{nodeID: cfg.NodeID, store: cfg.Store, kek: cfg.KEK, hostNames: cfg.HostNames, now: cfg.Now, logger: cfg.Logger,
		metrics: cfg.Metrics, cas: map[string]*ca.SSHCA{}, inner: map[innerKey]innerSigners{}}
	if a.now == nil {
		a.now = time.Now
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.metrics == nil {
		a.metrics = NewMetrics(nil)
	}
	return a
}

// open returns the unsealed CA of a record.
func (a *Authority) open(rec *raftstore.CARecord) (*ca.SSHCA, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.cas[rec.ID]; ok {
		return c, nil
	}
	c, err := ca.OpenSSHCA(rec.ID, rec.SealedKey, a.kek)
	if err != nil {
		return nil, err
	}
	a.cas[rec.ID] = c
	return c, nil
}

// EnsureUserCA makes sure the project has a user CA, creating it on first
// use.
func (a *Authority) EnsureUserCA(ctx context.Context, project string) error {
	_, err := a.userCA(ctx, project)
	return err
}

// userCA returns the project's active user CA, creating it on first use.
func (a *Authority) userCA(ctx context.Context, project string) (*ca.SSHCA, error) {
	return a.activeOrCreate(ctx, raftstore.CAUser, project, func() string {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		return "user-" + project + "-" + hex.EncodeToString(b)
	})
}

// hostCA returns the cluster's host CA of kind (raftstore.CAHost, the
// target host CA, or raftstore.CANodeHost, the node host CA), creating it
// under id if the cluster has none yet.
func (a *Authority) hostCA(ctx context.Context, kind raftstore.CAKind, id string) (*ca.SSHCA, error) {
	return a.activeOrCreate(ctx, kind, "", func() string { return id })
}

// activeOrCreate returns the active SSH CA of kind and project, creating an
// ed25519 one (under newID()) when the cluster has none: no record of that
// kind and project at all (keys without an active one are ErrNoActiveCA).
// Two nodes racing to create it both end up with the one raft kept.
func (a *Authority) activeOrCreate(ctx context.Context, kind raftstore.CAKind, project string, newID func() string) (*ca.SSHCA, error) {
	what := string(kind) + " CA"
	if project != "" {
		what += " of " + project
	}
	confirmed := false
	for attempt := 0; attempt < createAttempts; attempt++ {
		_, rec, err := a.store.State().ActiveCA(nil, kind, project)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return a.open(rec)
		}
		if !confirmed {
			// A CA is created only when the cluster has none: check what
			// the leader has committed first, or a replica still replaying
			// its log after a restart would think the CA missing.
			if err := a.store.ConsistentRead(ctx); err != nil {
				return nil, err
			}
			confirmed = true
			continue
		}
		// A chain that has keys but none active was broken by hand or by a
		// bug: a fresh key made here would sign without any target having
		// been told to trust it. Refuse instead.
		if _, recs, err := a.store.State().CAsFor(nil, kind, project); err != nil {
			return nil, err
		} else if len(recs) > 0 {
			return nil, fmt.Errorf("the %s has %d keys but none is active: %w", what, len(recs), ErrNoActiveCA)
		}
		id := newID()
		c, sealed, pub, err := ca.NewSSHCAKey(id, a.kek)
		if err != nil {
			return nil, err
		}
		_, err = a.store.Apply(ctx, &raftstore.CAUpsert{Record: raftstore.CARecord{
			ID: id, Kind: kind, Project: project, Algorithm: gossh.KeyAlgoED25519, PublicKey: pub, SealedKey: sealed, State: raftstore.CAActive,
		}, Now: a.now().UTC()})
		if err == nil {
			a.mu.Lock()
			a.cas[id] = c
			a.mu.Unlock()
			a.logger.Info("created SSH CA", "ca_kind", string(kind), "project", project, "ca", id)
			return c, nil
		}
		// Another node won the race, or the leader was lost after the
		// write was sent: either way, look again at what was committed.
		if !errors.Is(err, raftstore.ErrConflict) && !errors.Is(err, raftstore.ErrOutcomeUnknown) {
			return nil, fmt.Errorf("create the %s: %w", what, err)
		}
		if err := a.store.ConsistentRead(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("create the %s: lost the race three times", what)
}
