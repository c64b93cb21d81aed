package gateway

import (
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/recording/archive"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
)

// recordingsDir is recording.dir, or <data_dir>/recordings.
func (n *Node) recordingsDir() string {
	if n.cfg.Recording.Dir != "" {
		return n.cfg.Recording.Dir
	}
	return n.dir.path("recordings")
}

// newReplicator builds the node's recording replication: copies to and
// from the other nodes over the cluster's mutual TLS, and retention.
func (n *Node) newReplicator() *replica.Replicator {
	r := n.cfg.Recording
	return replica.New(replica.Config{Dir: n.recordingsDir(), NodeID: n.id, Store: n.store, TLS: n.tls.RaftClient,
		Replicas: r.Replicas, MaxBytes: r.MaxSessionBytes, MinFreeBytes: uint64(r.MinFreeMiB) << 20, MaxAge: r.Retention.MaxAge, MaxTotalBytes: r.Retention.MaxTotalBytes,
		Audit: n.audit, Logger: n.logger.With("room", "recording")})
}

// recordingFiles is the node's recording archive: recording.dir, or
// <data_dir>/recordings, and the other nodes' copies over mutual TLS with
// this node's certificate.
func (n *Node) recordingFiles() *archive.Archive {
	return archive.New(archive.Config{Dir: n.recordingsDir(), NodeID: n.id, Store: n.store, TLS: n.tls.RaftClient,
		MaxBytes: n.cfg.Recording.MaxSessionBytes, MinFreeBytes: uint64(n.cfg.Recording.MinFreeMiB) << 20, Replicas: n.replicas})
}

// startRecording is the jump proxy's recorder factory.
func (n *Node) startRecording(spec jump.RecordingSpec) (jump.Recorder, error) {
	rec, err := n.recordingFiles().Start(spec)
	if err != nil {
		return nil, err
	}
	return rec, nil
}
