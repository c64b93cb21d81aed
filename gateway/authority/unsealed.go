package authority

import (
	"errors"
	"fmt"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Unsealed reports whether this node holds its CA keys: the cluster TLS CA
// and every active SSH CA in its replica open with its key-encryption key.
// The error says which does not, and why (a node started with the wrong
// KEK, or one whose replica has no CAs yet). Opened keys are cached, so a
// readiness probe asking often costs a read of the replica.
func (a *Authority) Unsealed() error {
	st := a.store.State()
	_, meta, err := st.Meta(nil)
	if err != nil {
		return fmt.Errorf("read the cluster identity: %w", err)
	}
	if meta == nil || meta.TLSCACert == "" || len(meta.TLSCAKeySealed) == 0 {
		return errNoClusterCA
	}
	a.mu.Lock()
	checked := a.tlsUnsealed == meta.TLSCACert
	a.mu.Unlock()
	if !checked {
		if _, err := a.tlsCA(a.now); err != nil {
			return fmt.Errorf("unseal the cluster TLS CA: %w", err)
		}
		a.mu.Lock()
		a.tlsUnsealed = meta.TLSCACert
		a.mu.Unlock()
	}
	for _, kind := range []raftstore.CAKind{raftstore.CAHost, raftstore.CANodeHost} {
		_, rec, err := st.ActiveCA(nil, kind, "")
		if err != nil {
			return fmt.Errorf("read the %s CA: %w", kind, err)
		}
		if rec == nil {
			return fmt.Errorf("%w: no active %s CA", errNotCreated, kind)
		}
	}
	_, recs, err := st.CAs(nil)
	if err != nil {
		return fmt.Errorf("read the CAs: %w", err)
	}
	for _, rec := range recs {
		if rec.State != raftstore.CAActive {
			continue
		}
		if _, err := a.open(rec); err != nil {
			return fmt.Errorf("unseal CA %s: %w", rec.ID, err)
		}
	}
	return nil
}

// errNotCreated: the replica lacks a CA the node needs (before the node's
// front door has created it on a new cluster, or before this node has
// replayed it).
var errNotCreated = errors.New("a CA is not in the replica yet")
