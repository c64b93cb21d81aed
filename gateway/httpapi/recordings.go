package httpapi

import (
	"errors"
	"io"
	"io/fs"
	"net/http"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Recordings opens the session recordings this node keeps.
type Recordings interface {
	// OpenLocal opens the recording of a session this node carried; it
	// refuses a recorded path that would lead out of its recordings
	// directory.
	OpenLocal(session *raftstore.Session) (io.ReadCloser, error)
}

// SetRecordings serves this node's recordings to the other nodes at
// GET /v1/internal/recordings/{session}, for the admin shell's sessions
// replay on whichever node the admin is connected to. Call it once, before
// serving; without it the endpoint does not exist.
func (s *Server) SetRecordings(r Recordings) {
	s.handle("GET /v1/internal/recordings/{session}", s.requireNode(func(w http.ResponseWriter, req *http.Request, peer string) {
		s.serveRecording(w, req, peer, r)
	}))
}

// serveRecording streams a closed session's asciicast file as it is on disk.
// The caller checks it against the SHA-256 in raft: this endpoint only
// delivers.
func (s *Server) serveRecording(w http.ResponseWriter, r *http.Request, peer string, recs Recordings) {
	id := r.PathValue("session")
	_, sess, err := s.store.State().SessionByID(nil, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	self := s.store.NodeID()
	switch {
	case sess == nil:
		s.writeError(w, r, Errorf(http.StatusNotFound, "session %q not found", id))
		return
	case sess.Node != self:
		s.writeError(w, r, Errorf(http.StatusNotFound, "session %s was carried by node %s, not by node %s", id, sess.Node, self))
		return
	case sess.Status != raftstore.SessionClosed || sess.RecordingPath == "":
		s.writeError(w, r, Errorf(http.StatusNotFound, "session %s has no finished recording", id))
		return
	}
	f, err := recs.OpenLocal(sess)
	if errors.Is(err, fs.ErrNotExist) {
		s.writeError(w, r, Errorf(http.StatusNotFound, "the recording of session %s is not on node %s any more", id, self))
		return
	}
	if err != nil {
		s.logger.Error("cannot serve recording", "session", id, "peer_node", peer, "err", err)
		s.writeError(w, r, Errorf(http.StatusInternalServerError, "node %s cannot read the recording of session %s; see its log", self, id))
		return
	}
	defer f.Close()
	s.logger.Info("serving recording to node", "session", id, "peer_node", peer)
	w.Header().Set("Content-Type", "application/x-asciicast")
	s.holdFor(w, downloadHold)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.logger.Warn("recording transfer ended early", "session", id, "peer_node", peer, "err", err)
	}
}
