package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/rampart-ssh/rampart/gateway/control"
)

// Response headers of GET /v1/cluster/backup; the body's first and last
// lines carry the same (gateway/backup).
const (
	headerBackupIndex  = "X-Rampart-Backup-Index"
	headerBackupTerm   = "X-Rampart-Backup-Term"
	headerBackupSHA256 = "X-Rampart-Backup-Sha256"
)

// clusterBackup streams a backup of the replicated state (control.Backup,
// which audits it). An error once the body has started aborts the
// response, so the client holds a backup without its checksum line, which
// restore refuses.
func (s *Server) clusterBackup(w http.ResponseWriter, r *http.Request) {
	s.holdFor(w, downloadHold)
	started := false
	_, err := s.control.Backup(r.Context(), adminActor(r), w, func(b control.BackupInfo) {
		started = true
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="rampart-%s-%d.backup"`, b.Header.ClusterID, b.Header.Index))
		h.Set(headerBackupIndex, strconv.FormatUint(b.Header.Index, 10))
		h.Set(headerBackupTerm, strconv.FormatUint(b.Header.Term, 10))
		h.Set(headerBackupSHA256, b.SHA256)
		w.WriteHeader(http.StatusOK)
	})
	if err == nil {
		return
	}
	if !started {
		s.writeError(w, r, err)
		return
	}
	s.logger.Error("backup stream failed", "err", err)
	panic(http.ErrAbortHandler)
}
