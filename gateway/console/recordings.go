package console

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-ssh/rampart/raftstore"
)

// NamedRecordings also opens a session's later recordings: "<id>-2",
// "<id>-3", ... (a connection's second and later recorded channels). A
// Recordings without it opens the first alone.
type NamedRecordings interface {
	Recordings
	OpenNamed(ctx context.Context, s *raftstore.Session, name string) (io.ReadCloser, error)
}

var errNoSuchRecording = errors.New("this node cannot open a session's later recordings")

// openRecording opens recording name of s ("" or s.ID: its first).
func openRecording(ctx context.Context, recs Recordings, s *raftstore.Session, name string) (io.ReadCloser, error) {
	if name == "" || name == s.ID {
		return recs.Open(ctx, s)
	}
	if nr, ok := recs.(NamedRecordings); ok {
		return nr.OpenNamed(ctx, s, name)
	}
	return nil, errNoSuchRecording
}

// recordingNames lists a session's recordings the cluster holds a copy of,
// its first ("<id>") first, then "<id>-2", "<id>-3", ... in order; a
// session recorded before holders were kept has its first alone.
func recordingNames(st *raftstore.State, s *raftstore.Session) []string {
	var names []string
	if _, hs, err := st.RecordingHoldersOf(nil, s.ID); err == nil {
		for _, h := range hs {
			if !slices.Contains(names, h.Name) {
				names = append(names, h.Name)
			}
		}
	}
	if len(names) == 0 && s.RecordingPath != "" {
		names = []string{s.ID}
	}
	ord := func(n string) int {
		if n == s.ID {
			return 0
		}
		if k, err := strconv.Atoi(strings.TrimPrefix(n, s.ID+"-")); err == nil {
			return k
		}
		return 1 << 30
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(ord(a), ord(b)), strings.Compare(a, b)) })
	return names
}
