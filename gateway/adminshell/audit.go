package adminshell

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// the audit log: listing, export and chain verification.

// auditPage is how many events one read of the log takes.
const auditPage = 1000

// maxAuditLine bounds one line of an exported log.
const maxAuditLine = 1 << 20

// auditView is an event as listings and exports show it; an export is one
// compact auditView per line, which `audit verify --file` reads back.
type auditView struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor"`
	Fields   map[string]string `json:"fields"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

func newAuditView(e *raftstore.AuditEvent) auditView {
	f := e.Fields
	if f == nil {
		f = map[string]string{}
	}
	return auditView{Seq: e.Seq, Time: e.Time.UTC(), Type: e.Type, Actor: e.Actor, Fields: f, PrevHash: e.PrevHash, Hash: e.Hash}
}

func (a *auditView) event() *raftstore.AuditEvent {
	return &raftstore.AuditEvent{Seq: a.Seq, Time: a.Time, Type: a.Type, Actor: a.Actor, Fields: a.Fields, PrevHash: a.PrevHash, Hash: a.Hash}
}

// eachAudit calls fn with the events after seq, page by page, until fn
// returns false or the log ends.
func eachAudit(st *raftstore.State, after uint64, fn func([]*raftstore.AuditEvent) bool) error {
	for {
		_, page, err := st.AuditSince(nil, after, auditPage)
		if err != nil {
			return err
		}
		if len(page) == 0 || !fn(page) {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// parseSince reads --since: a duration back from now (90m, 24h, 7d), an
// RFC 3339 time, or a date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--since %q: want a duration back from now (1h, 7d) or a time (RFC 3339, or 2006-01-02)", s)
}

// auditFilter selects events for audit ls.
type auditFilter struct {
	since   time.Time
	users   []string
	typ     string
	servers []string
}

func (f *auditFilter) match(e *raftstore.AuditEvent) bool {
	if !f.since.IsZero() && e.Time.Before(f.since) {
		return false
	}
	if f.typ != "" && e.Type != f.typ && !strings.HasPrefix(e.Type, f.typ+".") {
		return false
	}
	if len(f.users) > 0 && !anyEqualFold(f.users, e.Actor, e.Fields["user"], e.Fields["user_id"]) {
		return false
	}
	if len(f.servers) > 0 && !anyEqualFold(f.servers, e.Fields["server"], e.Fields["server_id"]) {
		return false
	}
	return true
}

// anyEqualFold reports whether a non-empty value equals one of wants.
func anyEqualFold(wants []string, values ...string) bool {
	for _, val := range values {
		for _, w := range wants {
			if val != "" && strings.EqualFold(val, w) {
				return true
			}
		}
	}
	return false
}

func (v *invocation) auditCmd() *cobra.Command {
	return group("audit", "The hash-chained audit log", nil, v.auditLsCmd(), v.auditTailCmd(), v.auditVerifyCmd(), v.auditExportCmd(),
		v.auditExportCursorsCmd())
}

func (v *invocation) auditLsCmd() *cobra.Command {
	var since, user, typ, server string
	var limit int
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List audit events, oldest first (the newest --limit)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if limit < 0 {
				return usagef("--limit %d is negative", limit)
			}
			st := v.state()
			f, err := v.newAuditFilter(st, since, user, typ, server)
			if err != nil {
				return err
			}
			var views []auditView
			err = eachAudit(st, 0, func(page []*raftstore.AuditEvent) bool {
				for _, e := range page {
					if f.match(e) {
						views = append(views, newAuditView(e))
						if limit > 0 && len(views) > 2*limit {
							views = append(views[:0], views[len(views)-limit:]...)
						}
					}
				}
				return true
			})
			if err != nil {
				return err
			}
			if limit > 0 && len(views) > limit {
				views = views[len(views)-limit:]
			}
			ids := make([]string, len(views))
			for i, e := range views {
				ids[i] = strconv.FormatUint(e.Seq, 10)
			}
			return v.emit(nonNil(views), ids, func(out io.Writer) error {
				t := newTable(out, "SEQ", "TIME", "TYPE", "ACTOR", "DETAILS")
				for _, e := range views {
					t.row(e.Seq, e.Time, e.Type, e.Actor, auditDetails(e.Fields))
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&since, "since", "", "only events since then: 1h, 7d, or a time (RFC 3339)")
	ls.Flags().StringVar(&user, "user", "", "only events by or about this user")
	ls.Flags().StringVar(&typ, "type", "", "only events of this type, or under it (user matches user.disable)")
	ls.Flags().StringVar(&server, "server", "", "only events about this server")
	ls.Flags().IntVar(&limit, "limit", 100, "show at most the newest N (0: all)")
	v.completeFlag(ls, "user", userNames)
	v.completeFlag(ls, "server", serverNames)
	v.completeFlag(ls, "type", fixed("login", "session", "sshd_login", "user", "project", "server"))
	return ls
}

func (v *invocation) auditVerifyCmd() *cobra.Command {
	var file string
	verify := &cobra.Command{
		Use:   "verify [--file -]",
		Short: "Prove the audit log has no gap and no edited event",
		Long: "Check the hash chain of the whole audit log: from its signed checkpoint when old\n" +
			"events were pruned (the pruned range is reported), else from the first event.\n" +
			"With --file, check an exported log\n" +
			"(`audit export`, or a JSON-lines sink) instead, read from standard input:\n" +
			"ssh admin@bastion audit verify --file - < audit.jsonl. The file is also compared\n" +
			"with the cluster's own log at its last event (and at the signed checkpoint's event);\n" +
			"a file that goes past the cluster's newest event fails.",
		Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if file != "" {
				return v.verifyFile(file)
			}
			return v.verifyLog()
		},
	}
	verify.Flags().StringVar(&file, "file", "", "verify an exported JSON-lines log read from standard input (-; no other value)")
	return verify
}

func (v *invocation) auditExportCmd() *cobra.Command {
	var after uint64
	export := &cobra.Command{
		Use: "export [--after SEQ]", Short: "Write the audit log as JSON lines (one event per line)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			enc := json.NewEncoder(v.out)
			enc.SetEscapeHTML(false)
			var werr error
			err := eachAudit(v.state(), after, func(page []*raftstore.AuditEvent) bool {
				for _, e := range page {
					if werr = enc.Encode(newAuditView(e)); werr != nil {
						return false
					}
				}
				return true
			})
			return errors.Join(err, werr)
		},
	}
	export.Flags().Uint64Var(&after, "after", 0, "only events after this sequence number")
	return export
}

// auditDetails renders fields for a table, the command first.
func auditDetails(f map[string]string) string {
	rest := make(map[string]string, len(f))
	for k, val := range f {
		if k != "command" && k != "admin_id" {
			rest[k] = val
		}
	}
	s := control.LabelString(rest)
	if c := f["command"]; c != "" {
		s = strings.TrimSpace(fmt.Sprintf("%q %s", c, s))
	}
	return s
}

// verifyReport is the outcome of a verification.
type verifyReport struct {
	OK       bool   `json:"ok"`
	Source   string `json:"source"`
	Events   int    `json:"events"`
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	HeadHash string `json:"head_hash,omitempty"`
	// Anchored: the file's first event follows the cluster's event before it.
	Anchored *bool `json:"anchored,omitempty"`
	// MatchesCluster: the file's last event is the cluster's event of that
	// seq, and its event at the cluster's checkpoint when it has it, the
	// checkpoint's (nil when the cluster pruned every event of the file).
	MatchesCluster *bool `json:"matches_cluster,omitempty"`
	// ClusterHead is the cluster's newest seq when the file goes past it.
	ClusterHead *uint64 `json:"cluster_head,omitempty"`
	BrokenAt    uint64  `json:"broken_at,omitempty"`
	Problem     string  `json:"problem,omitempty"`
	// PrunedThrough: events 1 to this were pruned behind the checkpoint
	// made at CheckpointTime, which the log was verified from.
	PrunedThrough  uint64     `json:"pruned_through,omitempty"`
	CheckpointTime *time.Time `json:"checkpoint_time,omitempty"`
}

// verifier checks events batch by batch against the one before.
type verifier struct {
	prev   *raftstore.AuditEvent
	report *verifyReport
}

func (vf *verifier) add(batch []*raftstore.AuditEvent) error {
	if len(batch) == 0 {
		return nil
	}
	if err := raftstore.VerifyAuditSegment(vf.prev, batch); err != nil {
		return err
	}
	if vf.report.Events == 0 {
		vf.report.FirstSeq = batch[0].Seq
	}
	vf.report.Events += len(batch)
	vf.prev = batch[len(batch)-1]
	vf.report.LastSeq, vf.report.HeadHash = vf.prev.Seq, vf.prev.Hash
	return nil
}

// finish prints the report; a broken chain is also the command's error.
func (v *invocation) finish(r *verifyReport, err error) error {
	var chain *raftstore.AuditChainError
	switch {
	case err == nil:
		r.OK = true
	case errors.As(err, &chain):
		r.BrokenAt, r.Problem = chain.Seq, chain.Problem
	default:
		r.Problem = err.Error()
	}
	if v.jsonOut {
		if werr := writeJSON(v.out, r); werr != nil {
			return werr
		}
	} else if r.OK && !v.quiet {
		msg := fmt.Sprintf("%s: %d event(s)", r.Source, r.Events)
		if r.Events > 0 {
			msg += fmt.Sprintf(", seq %d..%d, head %s", r.FirstSeq, r.LastSeq, r.HeadHash[:shortHash])
		}
		msg += ": chain intact"
		if r.PrunedThrough > 0 {
			msg += fmt.Sprintf("; events 1..%d pruned behind a checkpoint signed by the cluster (%s), verified", r.PrunedThrough, r.CheckpointTime.Format(time.RFC3339))
		}
		if r.Anchored != nil && *r.Anchored {
			msg += fmt.Sprintf("; follows the cluster's event %d", r.FirstSeq-1)
		} else if r.Anchored != nil {
			msg += fmt.Sprintf("; the cluster has no event %d to anchor the first one to", r.FirstSeq-1)
		}
		switch {
		case r.MatchesCluster == nil && r.Events > 0 && r.Source != "audit log":
			msg += "; the cluster pruned every event of the file, so it could not be compared"
		case r.MatchesCluster != nil:
			msg += "; matches the cluster's log"
		}
		fmt.Fprintln(v.out, msg)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.Source, err)
	}
	return nil
}

// verifyLog checks the cluster's whole log: its checkpoint, if it was
// pruned, then every event from there, page by page.
func (v *invocation) verifyLog() error {
	r := &verifyReport{Source: "audit log"}
	res, err := v.state().VerifyAudit(v.sh.auditKey, auditPage)
	if res != nil {
		r.Events, r.FirstSeq, r.LastSeq, r.HeadHash = res.Events, res.FirstSeq, res.LastSeq, res.HeadHash
		if cp := res.Pruned; cp != nil {
			at := cp.Created.UTC()
			r.PrunedThrough, r.CheckpointTime = cp.LastSeq, &at
		}
	}
	var chain *raftstore.AuditChainError
	if err != nil && !errors.As(err, &chain) {
		return err
	}
	return v.finish(r, err)
}

// checkpointAnchor is the verified checkpoint of the cluster's log when it
// stands for event seq (the last one pruned), else nil.
func (v *invocation) checkpointAnchor(st *raftstore.State, seq uint64) *raftstore.AuditEvent {
	_, as, err := st.AuditStateOf(nil)
	if err != nil || as.Checkpoint == nil || as.Checkpoint.LastSeq != seq || raftstore.VerifyAuditCheckpoint(as.Checkpoint, v.sh.auditKey) != nil {
		return nil
	}
	return as.Checkpoint.Anchor()
}

// verifyFile checks an exported log read from standard input, then ties it
// to the cluster's log: a file whose chain is whole but rewritten from
// scratch verifies on its own (the chain has no secret), and only differs
// from the cluster's copy. It is compared at its last event, at the
// checkpoint's event when it covers it, and a file that goes past the
// cluster's newest event fails: either the cluster lost its tail or the
// file was made up (padding past the head would otherwise leave nothing to
// compare). Only standard input is read: a path on the node would let an
// administrator probe the node's files and hang the shell on a FIFO.
func (v *invocation) verifyFile(path string) error {
	if path != "-" {
		return usagef("--file takes - (standard input) only: ssh admin@<bastion> audit verify --file - < audit.jsonl")
	}
	if v.in == nil {
		return errors.New("--file -: this session has no standard input; pipe the file in: ssh admin@<bastion> audit verify --file - < audit.jsonl")
	}
	in, source := v.in, "standard input"
	st := v.state()
	clusterEvent := func(seq uint64) (*raftstore.AuditEvent, error) {
		if seq == 0 {
			return nil, nil
		}
		_, evs, err := st.AuditSince(nil, seq-1, 1)
		if err != nil || len(evs) == 0 || evs[0].Seq != seq {
			// Pruned: the checkpoint stands for its last event.
			return v.checkpointAnchor(st, seq), err
		}
		return evs[0], nil
	}
	// The checkpoint (verified) the file is also compared at when it
	// covers its event; its hash is immutable once made.
	var cp *raftstore.AuditCheckpoint
	if _, as, err := st.AuditStateOf(nil); err == nil && as.Checkpoint != nil && raftstore.VerifyAuditCheckpoint(as.Checkpoint, v.sh.auditKey) == nil {
		cp = as.Checkpoint
	}
	var cpHash string // the file's hash of event cp.LastSeq

	r := &verifyReport{Source: source}
	vf := &verifier{report: r}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), maxAuditLine)
	var batch []*raftstore.AuditEvent
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var a auditView
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return v.finish(r, fmt.Errorf("line %d is not an exported audit event", line))
		}
		e := a.event()
		if vf.prev == nil && r.Events == 0 && len(batch) == 0 && e.Seq > 1 {
			// A file that starts mid-log: follow on from the cluster's event
			// before it when there is one, else from what the file claims.
			anchor, err := clusterEvent(e.Seq - 1)
			if err != nil {
				return err
			}
			anchored := anchor != nil
			r.Anchored = &anchored
			if anchor == nil {
				anchor = &raftstore.AuditEvent{Seq: e.Seq - 1, Hash: e.PrevHash}
			}
			vf.prev = anchor
		}
		if cp != nil && e.Seq == cp.LastSeq {
			cpHash = e.Hash
		}
		batch = append(batch, e)
		if len(batch) == auditPage {
			if err := vf.add(batch); err != nil {
				return v.finish(r, err)
			}
			batch = batch[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return v.finish(r, fmt.Errorf("read line %d: %w", line+1, err))
	}
	if err := vf.add(batch); err != nil {
		return v.finish(r, err)
	}
	if r.Events == 0 {
		return v.finish(r, nil)
	}
	// The head is read after the file: events written meanwhile only move
	// it forwards.
	_, head, err := st.AuditLast(nil)
	if err != nil {
		return err
	}
	if head == nil || r.LastSeq > head.Seq {
		at := uint64(0)
		if head != nil {
			at = head.Seq
		}
		r.ClusterHead = &at
		return v.finish(r, &raftstore.AuditChainError{Seq: r.LastSeq, Problem: fmt.Sprintf(
			"the file goes past the cluster's newest event (%d): the cluster lost its newest events, or the file was made up", at)})
	}
	if cpHash != "" && cpHash != cp.Hash {
		same := false
		r.MatchesCluster = &same
		return v.finish(r, &raftstore.AuditChainError{Seq: cp.LastSeq, Problem: "differs from the cluster's signed checkpoint (the file was rewritten)"})
	}
	theirs, err := clusterEvent(r.LastSeq)
	if err != nil {
		return err
	}
	if theirs != nil {
		// Nil only for a file whose every event the cluster pruned before
		// its checkpoint: nothing is left to compare with.
		same := theirs.Hash == r.HeadHash
		r.MatchesCluster = &same
		if !same {
			return v.finish(r, &raftstore.AuditChainError{Seq: r.LastSeq, Problem: "differs from the cluster's own log (the file was rewritten)"})
		}
	}
	return v.finish(r, nil)
}
