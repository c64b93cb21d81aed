package replica

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// RetainInterval is how often Run applies retention.
const RetainInterval = time.Minute

// Run applies retention every RetainInterval until ctx ends. Without a
// retention rule it returns at once.
func (r *Replicator) Run(ctx context.Context) {
	if r.cfg.MaxAge <= 0 && r.cfg.MaxTotalBytes <= 0 {
		return
	}
	t := time.NewTicker(RetainInterval)
	defer t.Stop()
	for {
		if _, err := r.Retain(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("recording retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Retain deletes this node's copies older than MaxAge, then the oldest
// until what is left fits MaxTotalBytes. Age is the cluster's retention
// (every node is configured with the same recording.retention.max_age): a
// copy past it goes whether or not others hold one. The size budget is one
// node's: a copy goes for it only while another node holds a complete copy
// of that recording (raft checks it, ordered with the other nodes'
// deletions), so a full disk never deletes the last complete copy; such a
// copy is kept and the node stays over its budget. Each deletion leaves raft
// first (so nobody is sent to a copy that is gone), then the disk, and is
// audited. It returns how many it deleted.
func (r *Replicator) Retain(ctx context.Context) (int, error) {
	_, held, err := r.cfg.Store.State().RecordingsHeldBy(nil, r.cfg.NodeID)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(held, func(a, b *raftstore.RecordingHolder) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	var total int64
	for _, h := range held {
		total += h.Bytes
	}
	now := r.cfg.Now()
	deleted, kept := 0, 0
	for _, h := range held {
		reason := ""
		switch {
		case r.cfg.MaxAge > 0 && now.Sub(h.At) > r.cfg.MaxAge:
			reason = "age"
		case r.cfg.MaxTotalBytes > 0 && total > r.cfg.MaxTotalBytes:
			reason = "size"
		default:
			continue
		}
		err := r.remove(ctx, h, reason)
		if reason == "size" && errors.Is(err, raftstore.ErrConflict) {
			kept++
			continue
		}
		if err != nil {
			return deleted, err
		}
		total -= h.Bytes
		deleted++
	}
	if kept > 0 && total > r.cfg.MaxTotalBytes {
		r.cfg.Logger.Warn("recordings over this node's size budget: the rest are the only complete copies in the cluster",
			"bytes", total, "max_total_bytes", r.cfg.MaxTotalBytes, "kept", kept)
	}
	return deleted, nil
}

func (r *Replicator) remove(ctx context.Context, h *raftstore.RecordingHolder, reason string) error {
	if _, err := r.cfg.Store.Apply(ctx, &raftstore.RecordingHolderDelete{Name: h.Name, Node: h.Node, OnlyIfCopied: reason == "size"}); err != nil {
		return err
	}
	if localCast(h.Path) {
		root, err := os.OpenRoot(r.cfg.Dir)
		if err != nil {
			return err
		}
		err = root.Remove(h.Path)
		root.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.cfg.Logger.Warn("delete recording file", "session", h.Session, "recording", h.Name, "err", err)
		}
	}
	r.cfg.Logger.Info("recording deleted by retention", "session", h.Session, "recording", h.Name, "reason", reason, "bytes", h.Bytes)
	r.audit(EventRecordingDelete, map[string]string{"session": h.Session, "recording": h.Name, "node": r.cfg.NodeID,
		"reason": reason, "bytes": itoa(h.Bytes), "sha256": h.SHA256})
	return nil
}
