package console

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Indexer keeps an Index in step with the cluster: it indexes each session
// once it has closed, from its recordings (wherever they are held) and the
// exec commands and sftp paths of its audit events. At start it catches up
// on every closed session not yet in the index, so a node rebuilds its
// index from the recordings it can read. A session whose recordings are
// all deleted (retention) leaves the index, as does one that ended longer
// ago than MaxAge.
type Indexer struct {
	Index *Index
	// State is the replicated state (the store itself: its State is the
	// current generation, which blocking queries need).
	State      raftstore.StateSource
	Recordings Recordings
	Logger     *slog.Logger
	// MaxAge is recording.retention.max_age: a session that ended longer
	// ago is dropped from the index and not indexed (0: kept).
	MaxAge time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Indexed, when set, is called after each session is indexed (tests).
	Indexed func(session string)

	// auditSeq is how far the audit log has been read; commands holds the
	// commands and paths of sessions not yet indexed.
	auditSeq uint64
	commands map[string][]string
	// indexed are the sessions in the index, or deliberately out of it
	// (expired): never looked at again unless a recording is deleted.
	indexed map[string]bool
	// failed are sessions whose recordings could not be read: how often,
	// and when to try again.
	failed map[string]*retry
	// dropped are sessions taken out of the index for good (expired, or
	// every recording deleted).
	dropped map[string]bool
	// names is how many recordings each session was indexed with.
	names map[string]int
	// pending are sessions to look at again (one of their recordings was
	// deleted, or a later one appeared).
	pending map[string]bool
	// sessionsSeen and holdersSeen are the ModifyIndex of the sessions and
	// holder rows already looked at.
	sessionsSeen, holdersSeen uint64
	lastExpiry                time.Time
	mu                        sync.Mutex
}

type retry struct {
	attempts int
	next     time.Time
}

const (
	// retryUnreadable is how long a session whose recording could not be
	// fetched waits before its first retry; each retry waits twice as
	// long, and after maxAttempts the session is indexed without the
	// recordings that could not be read.
	retryUnreadable = time.Minute
	maxAttempts     = 5
	// openTimeout bounds reading one recording.
	openTimeout = 30 * time.Second
	// indexWorkers index sessions at once.
	indexWorkers = 2
)

// Run indexes until ctx ends.
func (ix *Indexer) Run(ctx context.Context) {
	ix.init()
	var index uint64
	for ctx.Err() == nil {
		wait := 5 * time.Minute
		if len(ix.failed) > 0 || ix.MaxAge > 0 {
			wait = retryUnreadable
		}
		next, err := raftstore.BlockingQuery(ctx, ix.State, index, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			i1, _, err := st.Sessions(ws)
			if err != nil {
				return 0, err
			}
			i2, _, err := st.AuditLast(ws)
			if err != nil {
				return 0, err
			}
			i3, _, err := st.RecordingHolders(ws)
			return max(i1, i2, i3), err
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

// init fills the set of indexed sessions from the index (no stored field
// read).
func (ix *Indexer) init() {
	if ix.Logger == nil {
		ix.Logger = slog.New(slog.DiscardHandler)
	}
	if ix.Now == nil {
		ix.Now = time.Now
	}
	ix.commands, ix.failed, ix.pending = map[string][]string{}, map[string]*retry{}, map[string]bool{}
	ix.dropped, ix.names = map[string]bool{}, map[string]int{}
	ids, err := ix.Index.IDs()
	if err != nil {
		ix.Logger.Warn("search indexer: the index cannot be listed; rebuilding what it lacks", "err", err)
		ids = map[string]bool{}
	}
	ix.indexed = ids
	// Later holder rows of sessions already indexed are not looked for
	// again after a restart.
	ix.holdersSeen = ix.State.State().MaxIndex("recording_holders")
}

// pass reads the new audit events and holder rows, then indexes the closed
// sessions that changed since the last pass (or are due a retry), and
// drops expired ones.
func (ix *Indexer) pass(ctx context.Context) {
	st := ix.State.State()
	ix.readAudit(st)
	if _, hs, err := st.RecordingHolders(nil); err == nil {
		seen := ix.holdersSeen
		for _, h := range hs {
			if h.ModifyIndex <= ix.holdersSeen {
				continue
			}
			seen = max(seen, h.ModifyIndex)
			// A session waiting for its recording tries again now; one
			// indexed is indexed again when a later recording appeared.
			n, known := ix.names[h.Session]
			if ix.failed[h.Session] != nil || known && !ix.dropped[h.Session] {
				if _, s, err := st.SessionByID(nil, h.Session); err == nil && s != nil && (!known || len(recordingNames(st, s)) > n) {
					ix.pending[h.Session] = true
				}
			}
		}
		ix.holdersSeen = seen
	}
	_, sessions, err := st.Sessions(nil)
	if err != nil {
		ix.Logger.Warn("search indexer: read sessions", "err", err)
		return
	}
	now := ix.Now()
	var fresh, retries []*raftstore.Session
	seen := ix.sessionsSeen
	for _, s := range sessions {
		seen = max(seen, s.ModifyIndex)
		if s.Status != raftstore.SessionClosed {
			continue
		}
		changed := s.ModifyIndex > ix.sessionsSeen || ix.pending[s.ID]
		switch {
		case ix.dropped[s.ID]:
		case ix.expired(s, now):
			ix.drop(s.ID)
		case ix.failed[s.ID] != nil:
			if !now.Before(ix.failed[s.ID].next) || ix.pending[s.ID] {
				retries = append(retries, s)
			}
		case changed && (!ix.indexed[s.ID] || ix.pending[s.ID]):
			fresh = append(fresh, s)
		case ix.indexed[s.ID]:
			delete(ix.commands, s.ID)
		}
	}
	ix.sessionsSeen = seen
	clear(ix.pending)
	// New sessions first: a session whose recording cannot be read does
	// not hold them up.
	ix.indexAll(ctx, st, append(fresh, retries...), now)
	if ix.MaxAge > 0 && now.Sub(ix.lastExpiry) >= retryUnreadable {
		ix.lastExpiry = now
		for id := range ix.indexed {
			if ix.dropped[id] {
				continue
			}
			if _, s, err := st.SessionByID(nil, id); err == nil && s != nil && ix.expired(s, now) {
				ix.drop(id)
			}
		}
	}
}

// readAudit reads the audit events since the last pass: the commands and
// paths of sessions, and the deletions of recordings.
func (ix *Indexer) readAudit(st *raftstore.State) {
	for {
		_, batch, err := st.AuditSince(nil, ix.auditSeq, 1000)
		if err != nil || len(batch) == 0 {
			return
		}
		for _, e := range batch {
			ix.auditSeq = e.Seq
			sess := e.Fields["session"]
			if sess == "" {
				continue
			}
			switch {
			case e.Type == "session.exec" && e.Fields["command"] != "":
				if !ix.indexed[sess] {
					ix.commands[sess] = append(ix.commands[sess], e.Fields["command"])
				}
			case strings.HasPrefix(e.Type, "sftp.") && e.Fields["path"] != "":
				if !ix.indexed[sess] {
					ix.commands[sess] = append(ix.commands[sess], e.Fields["path"])
				}
			case e.Type == replica.EventRecordingDelete && ix.indexed[sess] && !ix.dropped[sess]:
				// Retention deleted a copy: the last one of a recording
				// takes its text out of the index (the session's, when it
				// was its last recording).
				ix.recordingDeleted(st, sess, e.Fields["recording"])
			}
		}
	}
}

func (ix *Indexer) recordingDeleted(st *raftstore.State, sess, name string) {
	if !ix.recordingGone(st, sess, name) {
		return
	}
	_, hs, err := st.RecordingHoldersOf(nil, sess)
	if err != nil {
		return
	}
	if len(hs) == 0 {
		ix.drop(sess)
		return
	}
	// Others remain: index it again from them, with its commands.
	ix.commands[sess] = ix.Index.commands(sess)
	if err := ix.Index.Delete(sess); err != nil {
		ix.Logger.Warn("search indexer: delete", "session", sess, "err", err)
		return
	}
	delete(ix.indexed, sess)
	ix.pending[sess] = true
}

// recordingGone reports whether no node holds recording name of session
// any more.
func (ix *Indexer) recordingGone(st *raftstore.State, session, name string) bool {
	_, hs, err := st.RecordingHoldersOf(nil, session)
	if err != nil {
		return false
	}
	for _, h := range hs {
		if h.Name == name {
			return false
		}
	}
	return true
}

func (ix *Indexer) expired(s *raftstore.Session, now time.Time) bool {
	return ix.MaxAge > 0 && !s.End.IsZero() && now.Sub(s.End) > ix.MaxAge
}

// drop takes a session out of the index for good (it expired, or its
// recordings are gone).
func (ix *Indexer) drop(id string) {
	if err := ix.Index.Delete(id); err != nil {
		ix.Logger.Warn("search indexer: delete", "session", id, "err", err)
		return
	}
	ix.indexed[id], ix.dropped[id] = true, true
	delete(ix.names, id)
	delete(ix.commands, id)
	delete(ix.failed, id)
}

// indexAll indexes sessions, indexWorkers at a time.
func (ix *Indexer) indexAll(ctx context.Context, st *raftstore.State, todo []*raftstore.Session, now time.Time) {
	work := make(chan *raftstore.Session)
	var wg sync.WaitGroup
	for range min(indexWorkers, len(todo)) {
		wg.Go(func() {
			for s := range work {
				ix.indexOne(ctx, st, s, now)
			}
		})
	}
	for _, s := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- s
	}
	close(work)
	wg.Wait()
}

func (ix *Indexer) indexOne(ctx context.Context, st *raftstore.State, s *raftstore.Session, now time.Time) {
	ix.mu.Lock()
	r := ix.failed[s.ID]
	cmds := ix.commands[s.ID]
	ix.mu.Unlock()
	// The last attempt indexes what it can read.
	last := r != nil && r.attempts+1 >= maxAttempts
	n, err := ix.indexSession(ctx, st, s, cmds, last)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if r == nil {
			r = &retry{}
			ix.failed[s.ID] = r
		}
		r.attempts++
		r.next = now.Add(retryUnreadable << (r.attempts - 1))
		ix.Logger.Warn("search indexer: session not indexed yet", "session", s.ID, "node", s.Node, "attempt", r.attempts, "err", err)
		return
	}
	delete(ix.failed, s.ID)
	delete(ix.commands, s.ID)
	ix.indexed[s.ID], ix.names[s.ID] = true, n
	if ix.Indexed != nil {
		ix.Indexed(s.ID)
	}
}

// indexSession reads every recording of s and indexes it; with partial, a
// recording that cannot be read is left out (and logged) rather than
// failing the session.
func (ix *Indexer) indexSession(ctx context.Context, st *raftstore.State, s *raftstore.Session, cmds []string, partial bool) (int, error) {
	d := Doc{Session: s.ID, User: s.UserID, Server: s.ServerID, Project: s.Project, Start: s.Start, Commands: cmds}
	if _, u, err := st.UserByID(nil, s.UserID); err == nil && u != nil {
		d.User = u.Login
	}
	if _, srv, err := st.ServerByID(nil, s.ServerID); err == nil && srv != nil {
		d.Server = srv.Name
	}
	names := recordingNames(st, s)
	for _, name := range names {
		lines, err := ix.readLines(ctx, s, name)
		if err != nil {
			if !partial {
				return 0, err
			}
			ix.Logger.Warn("search indexer: recording unavailable; indexed without it", "session", s.ID, "recording", name, "err", err)
			continue
		}
		if name == s.ID {
			d.Lines = lines
		} else {
			d.Later = append(d.Later, RecordingLines{Name: name, Lines: lines})
		}
	}
	return len(names), ix.Index.Add(d)
}

func (ix *Indexer) readLines(ctx context.Context, s *raftstore.Session, name string) ([]Line, error) {
	rctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	rc, err := openRecording(rctx, ix.Recordings, s, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lines, err := ExtractLines(rc)
	if err == nil && rctx.Err() != nil {
		err = errors.New("reading the recording took too long")
	}
	return lines, err
}
