package gateway

import (
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/recording/archive"
)

// recordingFiles is the node's recording archive: recording.dir, or
// <data_dir>/recordings, and the other nodes' over mutual TLS with this
// node's certificate.
func (n *Node) recordingFiles() *archive.Archive {
	dir := n.cfg.Recording.Dir
	if dir == "" {
		dir = n.dir.path("recordings")
	}
	return archive.New(archive.Config{Dir: dir, NodeID: n.id, Store: n.store, TLS: n.tls.RaftClient,
		MaxBytes: n.cfg.Recording.MaxSessionBytes, MinFreeBytes: uint64(n.cfg.Recording.MinFreeMiB) << 20})
}

// startRecording is the jump proxy's recorder factory.
func (n *Node) startRecording(spec jump.RecordingSpec) (jump.Recorder, error) {
	rec, err := n.recordingFiles().Start(spec)
	if err != nil {
		return nil, err
	}
	return rec, nil
}
