package control

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/backup"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// EventClusterBackup is the audit event of a backup handed out.
const EventClusterBackup = "cluster.backup"

// errNoSnapshots: the node gave the service no way to take backups.
var errNoSnapshots = &fault.Error{Status: http.StatusServiceUnavailable, Code: "no_backups",
	Msg: "this node cannot take backups"}

// Snapshots takes consistent snapshots of the replicated state
// (raftstore.Store.TakeBackup).
type Snapshots interface {
	TakeBackup(ctx context.Context) (*raftstore.Backup, error)
}

// BackupInfo describes a backup: its header and its SHA-256.
type BackupInfo struct {
	Header backup.Header
	SHA256 string
}

// Backup takes a consistent snapshot of the replicated state (every change
// the cluster had committed when it was called) and writes it to w in the
// backup format (gateway/backup), authenticated with the node's backup key
// (Deps.BackupKey). It is audited before the first byte
// leaves, with the snapshot's raft index and SHA-256: a backup holds every
// secret's hash and every sealed key, so none is handed out unaudited.
// begin, when not nil, is called with the backup's description just before
// it is written (the API sets its response headers there). An error after
// begin means w holds an incomplete backup, which a restore refuses.
func (s *Service) Backup(ctx context.Context, a Actor, w io.Writer, begin func(BackupInfo)) (*BackupInfo, error) {
	if s.snapshots == nil || len(s.backupKey) == 0 {
		return nil, errNoSnapshots
	}
	tctx, cancel := context.WithTimeout(ctx, s.applyTimeout)
	b, err := s.snapshots.TakeBackup(tctx)
	cancel()
	if err != nil {
		return nil, err
	}
	_, meta, err := s.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	info := BackupInfo{Header: backup.Header{Format: backup.Format, ClusterID: meta.ClusterID, Node: b.Node, Index: b.Index, Term: b.Term,
		CreatedAt: s.now().UTC(), Version: api.Version, Size: b.Size}}
	// The checksum first (the snapshot is a file of raft's), so that the
	// audit event and the response headers can carry it.
	if info.SHA256, err = s.sumBackup(info.Header, b); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, a, EventClusterBackup, map[string]string{
		"index": strconv.FormatUint(b.Index, 10), "sha256": info.SHA256, "bytes": strconv.FormatInt(b.Size, 10), "node": b.Node,
	}); err != nil {
		return nil, err
	}
	rc, err := b.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if begin != nil {
		begin(info)
	}
	sum, err := backup.Write(w, info.Header, s.backupKey, rc)
	if err != nil {
		return nil, err
	}
	if sum != info.SHA256 {
		return nil, fmt.Errorf("backup: the snapshot changed while it was written (SHA-256 %s, then %s)", info.SHA256, sum)
	}
	s.logger.Info("backup taken", "user", a.Name, "index", b.Index, "sha256", sum, "bytes", b.Size)
	return &info, nil
}

func (s *Service) sumBackup(hdr backup.Header, b *raftstore.Backup) (string, error) {
	rc, err := b.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return backup.Sum(hdr, s.backupKey, rc)
}
