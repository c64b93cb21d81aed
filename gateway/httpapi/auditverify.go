package httpapi

import (
	"crypto/ed25519"
	"errors"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// SetAuditKey gives the server the key that checks the audit log's
// checkpoint; without it a pruned log does not verify.
func (s *Server) SetAuditKey(key ed25519.PublicKey) { s.auditKey = key }

// verifyAudit checks the log: its signed checkpoint when it was pruned,
// then the hash chain from there, page by page.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, verr := s.store.State().VerifyAudit(s.auditKey, auditScan)
	out := api.AuditVerify{}
	if res != nil {
		out.Events, out.FirstSeq, out.LastSeq, out.HeadHash = res.Events, res.FirstSeq, res.LastSeq, res.HeadHash
		if res.Pruned != nil {
			out.PrunedThrough = res.Pruned.LastSeq
		}
	}
	var chain *raftstore.AuditChainError
	switch {
	case verr == nil:
		out.OK = true
	case errors.As(verr, &chain):
		out.BrokenAt, out.Problem = chain.Seq, chain.Problem
	default:
		out.Problem = "the log could not be read"
	}
	writeJSON(w, http.StatusOK, out)
}
