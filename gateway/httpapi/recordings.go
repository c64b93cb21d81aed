package httpapi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// EventRecordingDownload: a session's recording was read through the API
// (fields: session, recording, holder, sha256, partial, and the token's).
const EventRecordingDownload = "recording.download"

// Recordings opens the session recordings this node keeps, takes copies
// from other nodes, and finds a copy anywhere in the cluster.
type Recordings interface {
	// OpenLocal opens the recording of a session this node carried,
	// before recordings had holders; it refuses a recorded path that would
	// lead out of its recordings directory.
	OpenLocal(session *raftstore.Session) (io.ReadCloser, error)
	// OpenHeld opens this node's copy h.
	OpenHeld(h raftstore.RecordingHolder) (io.ReadCloser, error)
	// Receive takes a copy from node from (replica.Replicator.Receive).
	Receive(ctx context.Context, from, name, session string, body io.Reader, trailer func() string) (*replica.Received, error)
	// OpenVerified returns a copy of the session's recording that matches
	// its holder's SHA-256, from whichever node holds one.
	OpenVerified(ctx context.Context, s *raftstore.Session) (*replica.Copy, error)
}

// SetRecordings serves this node's recordings to the other nodes at
// GET /v1/internal/recordings/{name}, takes their copies at PUT on the same
// path, and makes GET /v1/sessions/{id}/recording answer. Call it once,
// before serving; without it those endpoints answer 404 (the public one)
// or do not exist.
func (s *Server) SetRecordings(r Recordings) {
	s.recordings = r
	s.handle("GET "+replica.InternalPath+"{name}", s.requireNode(func(w http.ResponseWriter, req *http.Request, peer string) {
		s.serveRecording(w, req, peer, r)
	}))
	s.handle("PUT "+replica.InternalPath+"{name}", s.requireNode(func(w http.ResponseWriter, req *http.Request, peer string) {
		s.receiveRecording(w, req, peer, r)
	}))
}

// serveRecording streams a recording this node holds as it is on disk. The
// caller checks it against the SHA-256 in raft: this endpoint only
// delivers.
func (s *Server) serveRecording(w http.ResponseWriter, r *http.Request, peer string, recs Recordings) {
	name := r.PathValue("name")
	self := s.store.NodeID()
	var f io.ReadCloser
	_, h, err := s.store.State().RecordingHolder(nil, name, self)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return
	case h != nil:
		f, err = recs.OpenHeld(*h)
	default:
		// A recording made before holders were: by session id, on the
		// node that carried it.
		var sess *raftstore.Session
		if _, sess, err = s.store.State().SessionByID(nil, name); err != nil {
			s.writeError(w, r, err)
			return
		}
		switch {
		case sess == nil || sess.Node != self:
			s.writeError(w, r, Errorf(http.StatusNotFound, "node %s holds no recording %q", self, name))
			return
		case sess.Status != raftstore.SessionClosed || sess.RecordingPath == "":
			s.writeError(w, r, Errorf(http.StatusNotFound, "session %s has no finished recording", name))
			return
		}
		f, err = recs.OpenLocal(sess)
	}
	if errors.Is(err, fs.ErrNotExist) {
		s.writeError(w, r, Errorf(http.StatusNotFound, "the recording of session %s is not on node %s any more", name, self))
		return
	}
	if err != nil {
		s.logger.Error("cannot serve recording", "recording", name, "peer_node", peer, "err", err)
		s.writeError(w, r, Errorf(http.StatusInternalServerError, "node %s cannot read the recording of session %s; see its log", self, name))
		return
	}
	defer f.Close()
	s.logger.Info("serving recording to node", "recording", name, "peer_node", peer)
	w.Header().Set("Content-Type", "application/x-asciicast")
	s.holdFor(w, downloadHold)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.logger.Warn("recording transfer ended early", "recording", name, "peer_node", peer, "err", err)
	}
}

// receiveRecording takes a copy of a recording from another node: streamed
// live for as long as the session runs, or pushed whole once it closed.
func (s *Server) receiveRecording(w http.ResponseWriter, r *http.Request, peer string, recs Recordings) {
	// A live copy lasts as long as its session: no read or write deadline
	// (TCP keep-alives notice a peer that vanished without closing).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	name, session := r.PathValue("name"), r.URL.Query().Get("session")
	body := &interruptibleBody{Reader: r.Body, rc: rc}
	got, err := recs.Receive(r.Context(), peer, name, session, body, func() string { return r.Trailer.Get(replica.TrailerSHA256) })
	switch {
	case errors.Is(err, replica.ErrUnknownSession):
		s.writeError(w, r, notFoundf("the cluster has no session %q", session))
		return
	case errors.Is(err, replica.ErrNotCarrier):
		s.logger.Warn("recording copy refused: the sender did not carry the session", "recording", name, "session", session, "peer_node", peer)
		s.writeError(w, r, Errorf(http.StatusForbidden, "only the node that carried session %s sends copies of its recordings", session))
		return
	case errors.Is(err, replica.ErrHeldAlready), errors.Is(err, replica.ErrSuperseded), errors.Is(err, replica.ErrNoDigest):
		s.logger.Warn("recording copy refused", "recording", name, "session", session, "peer_node", peer, "err", err)
		s.writeError(w, r, Errorf(http.StatusConflict, "node %s does not take this copy of %s: %v", s.store.NodeID(), name, err))
		return
	case errors.Is(err, replica.ErrBusy):
		s.writeError(w, r, Errorf(http.StatusServiceUnavailable, "node %s takes no more copies from node %s at the moment", s.store.NodeID(), peer))
		return
	case errors.Is(err, replica.ErrNoSpace):
		s.writeError(w, r, Errorf(http.StatusInsufficientStorage, "node %s's recordings disk is at its free-space floor", s.store.NodeID()))
		return
	case errors.Is(err, recording.ErrDigestMismatch):
		s.logger.Warn("recording copy refused", "recording", name, "session", session, "peer_node", peer, "err", err)
		s.writeError(w, r, Errorf(http.StatusUnprocessableEntity, "the copy of %s does not match its SHA-256", name))
		return
	case errors.Is(err, replica.ErrTooLarge):
		s.writeError(w, r, Errorf(http.StatusRequestEntityTooLarge, "the copy of %s is larger than this node keeps", name))
		return
	case errors.Is(err, recording.ErrBadSessionID), errors.Is(err, replica.ErrNotSession):
		s.writeError(w, r, invalidf("%q is not a recording name of session %q", name, session))
		return
	case err != nil:
		s.logger.Error("cannot keep recording copy", "recording", name, "session", session, "peer_node", peer, "err", err)
		s.writeError(w, r, Errorf(http.StatusInternalServerError, "node %s cannot keep the copy of %s; see its log", s.store.NodeID(), name))
		return
	}
	writeJSON(w, http.StatusOK, got)
}

// interruptibleBody is a request body whose blocked read Receive can end
// (replica.Interrupter): a newer copy of the same recording supersedes it.
type interruptibleBody struct {
	io.Reader
	rc *http.ResponseController
}

func (b *interruptibleBody) Interrupt() { _ = b.rc.SetReadDeadline(time.Now()) }

// getSessionRecording answers GET /v1/sessions/{id}/recording: the
// session's asciicast file, read from any node that holds a copy and
// checked against that copy's SHA-256 before a byte is sent. Every read is
// audited.
func (s *Server) getSessionRecording(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, sess, err := s.store.State().SessionByID(nil, id)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return
	case sess == nil:
		s.writeError(w, r, notFoundf("session %q not found", id))
		return
	case s.recordings == nil:
		s.writeError(w, r, notFoundf("this node serves no recordings"))
		return
	}
	c, err := s.recordings.OpenVerified(r.Context(), sess)
	switch {
	case errors.Is(err, replica.ErrNoCopy):
		s.writeError(w, r, notFoundf("session %s has no recording the cluster holds", id))
		return
	case errors.Is(err, recording.ErrDigestMismatch):
		s.writeError(w, r, Errorf(http.StatusConflict, "no copy of the recording of session %s matches its recorded SHA-256", id))
		return
	case err != nil:
		s.logger.Error("cannot read recording", "session", id, "err", err)
		s.writeError(w, r, Errorf(http.StatusBadGateway, "no node holding the recording of session %s answered; see the node's log", id))
		return
	}
	defer c.Close()
	actor := adminActor(r)
	fields := map[string]string{"session": id, "recording": c.Holder.Name, "holder": c.Holder.Node, "sha256": c.Holder.SHA256,
		"partial": strconv.FormatBool(c.Holder.Partial)}
	maps.Copy(fields, actor.Fields)
	if err := (control.StoreAuditor{Store: s.store, Now: s.now}).Record(r.Context(), EventRecordingDownload, actor.Name, fields); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Content-Disposition", `attachment; filename="`+c.Holder.Name+`.cast"`)
	w.Header().Set(api.RecordingSHA256Header, c.Holder.SHA256)
	w.Header().Set(api.RecordingNodeHeader, c.Holder.Node)
	if c.Holder.Partial {
		w.Header().Set(api.RecordingPartialHeader, "true")
	}
	s.holdFor(w, downloadHold)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, c); err != nil {
		s.logger.Warn("recording download ended early", "session", id, "err", err)
	}
}
