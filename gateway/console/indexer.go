package console

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Indexer keeps an Index in step with the cluster: it indexes each session
// once it has closed, from its recording (wherever it is held) and the exec
// commands and sftp paths of its audit events. At start it catches up on
// every closed session not yet in the index, so a node rebuilds its index
// from the recordings it can read.
type Indexer struct {
	Index *Index
	// State is the replicated state (the store itself: its State is the
	// current generation, which blocking queries need).
	State      raftstore.StateSource
	Recordings Recordings
	Logger     *slog.Logger
	// Indexed, when set, is called after each session is indexed (tests).
	Indexed func(session string)

	// auditSeq is how far the audit log has been read; commands holds the
	// commands and paths of sessions not yet indexed.
	auditSeq uint64
	commands map[string][]string
	// failed are sessions whose recording could not be read, with when to
	// try again.
	failed map[string]time.Time
}

// retryUnreadable is how long a session whose recording could not be
// fetched waits before another try.
const retryUnreadable = time.Minute

// Run indexes until ctx ends.
func (ix *Indexer) Run(ctx context.Context) {
	if ix.Logger == nil {
		ix.Logger = slog.New(slog.DiscardHandler)
	}
	ix.commands, ix.failed = map[string][]string{}, map[string]time.Time{}
	var index uint64
	for ctx.Err() == nil {
		wait := 5 * time.Minute
		if len(ix.failed) > 0 {
			wait = retryUnreadable
		}
		next, err := raftstore.BlockingQuery(ctx, ix.State, index, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			i1, _, err := st.Sessions(ws)
			if err != nil {
				return 0, err
			}
			i2, _, err := st.AuditLast(ws)
			return max(i1, i2), err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ix.Logger.Warn("search indexer: state watch failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		index = next
		ix.pass(ctx)
	}
}

// pass reads the new audit events, then indexes every closed session the
// index lacks.
func (ix *Indexer) pass(ctx context.Context) {
	st := ix.State.State()
	for {
		_, batch, err := st.AuditSince(nil, ix.auditSeq, 1000)
		if err != nil || len(batch) == 0 {
			break
		}
		for _, e := range batch {
			ix.auditSeq = e.Seq
			sess := e.Fields["session"]
			if sess == "" {
				continue
			}
			switch {
			case e.Type == "session.exec" && e.Fields["command"] != "":
				ix.commands[sess] = append(ix.commands[sess], e.Fields["command"])
			case strings.HasPrefix(e.Type, "sftp.") && e.Fields["path"] != "":
				ix.commands[sess] = append(ix.commands[sess], e.Fields["path"])
			}
		}
	}
	_, sessions, err := st.Sessions(nil)
	if err != nil {
		ix.Logger.Warn("search indexer: read sessions", "err", err)
		return
	}
	now := time.Now()
	for _, s := range sessions {
		if ctx.Err() != nil {
			return
		}
		if s.Status != raftstore.SessionClosed {
			continue
		}
		if at, ok := ix.failed[s.ID]; ok && now.Before(at) {
			continue
		}
		if ix.Index.Has(s.ID) {
			delete(ix.commands, s.ID)
			continue
		}
		if err := ix.indexSession(ctx, st, s); err != nil {
			ix.Logger.Warn("search indexer: session not indexed yet", "session", s.ID, "node", s.Node, "err", err)
			ix.failed[s.ID] = now.Add(retryUnreadable)
			continue
		}
		delete(ix.failed, s.ID)
		delete(ix.commands, s.ID)
		if ix.Indexed != nil {
			ix.Indexed(s.ID)
		}
	}
}

func (ix *Indexer) indexSession(ctx context.Context, st *raftstore.State, s *raftstore.Session) error {
	d := Doc{Session: s.ID, User: s.UserID, Server: s.ServerID, Project: s.Project, Start: s.Start, Commands: ix.commands[s.ID]}
	if _, u, err := st.UserByID(nil, s.UserID); err == nil && u != nil {
		d.User = u.Login
	}
	if _, srv, err := st.ServerByID(nil, s.ServerID); err == nil && srv != nil {
		d.Server = srv.Name
	}
	if s.RecordingPath != "" {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rc, err := ix.Recordings.Open(rctx, s)
		if err != nil {
			return err
		}
		defer rc.Close()
		if d.Lines, err = ExtractLines(rc); err != nil {
			return err
		}
	}
	return ix.Index.Add(d)
}
