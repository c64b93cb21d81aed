package adminshell

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// audit tail: the newest events, and the ones that follow.

// tailWait is how long one blocking read of the audit log waits before it
// looks again (a restore or a closed session ends it sooner).
const tailWait = time.Minute

// newAuditFilter builds the selection of audit ls and tail; users and
// servers match by what the admin typed and by their login/name and id.
func (v *invocation) newAuditFilter(st *raftstore.State, since, user, typ, server string) (auditFilter, error) {
	f := auditFilter{typ: typ}
	if since != "" {
		t, err := parseSince(since, v.sh.now())
		if err != nil {
			return f, err
		}
		f.since = t
	}
	if user != "" {
		f.users = []string{user}
		if u, err := findUser(st, user); err == nil {
			f.users = append(f.users, u.Login, u.ID)
		}
	}
	if server != "" {
		f.servers = []string{server}
		if s, err := findServer(st, server); err == nil {
			f.servers = append(f.servers, s.Name, s.ID)
		}
	}
	return f, nil
}

func (f *auditFilter) empty() bool {
	return f.since.IsZero() && f.typ == "" && len(f.users) == 0 && len(f.servers) == 0
}

func (v *invocation) auditTailCmd() *cobra.Command {
	var follow bool
	var lines int
	var user, typ, server string
	c := &cobra.Command{
		Use:   "tail [-n N] [-f]",
		Short: "Show the newest audit events; with -f, follow new ones as they are written",
		Long: `Show the newest audit events, oldest first, one per line. With -f (--follow),
keep printing events as the cluster writes them, from any node, until Ctrl-C
(or the session ends). --json prints each event as one line of JSON, as
audit export does, so the stream can be piped into other tools.`,
		Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if lines < 0 {
				return usagef("--lines %d is negative", lines)
			}
			st := v.state()
			f, err := v.newAuditFilter(st, "", user, typ, server)
			if err != nil {
				return err
			}
			// The newest lines: from the end when nothing is filtered,
			// else over the whole log keeping the last matches.
			var after uint64
			if f.empty() {
				_, last, err := st.AuditLast(nil)
				if err != nil {
					return err
				}
				if last != nil && last.Seq > uint64(lines) {
					after = last.Seq - uint64(lines)
				}
			}
			var newest []*raftstore.AuditEvent
			seq := after
			err = eachAudit(st, after, func(page []*raftstore.AuditEvent) bool {
				for _, e := range page {
					seq = e.Seq
					if f.match(e) {
						newest = append(newest, e)
						if len(newest) > 2*lines+auditPage {
							newest = append(newest[:0], newest[len(newest)-lines:]...)
						}
					}
				}
				return true
			})
			if err != nil {
				return err
			}
			if len(newest) > lines {
				newest = newest[len(newest)-lines:]
			}
			for _, e := range newest {
				if err := v.tailLine(e); err != nil {
					return err
				}
			}
			if !follow {
				return nil
			}
			return v.followAudit(seq, &f)
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until Ctrl-C")
	c.Flags().IntVarP(&lines, "lines", "n", 20, "how many of the newest events to show first")
	c.Flags().StringVar(&user, "user", "", "only events by or about this user")
	c.Flags().StringVar(&typ, "type", "", "only events of this type, or under it")
	c.Flags().StringVar(&server, "server", "", "only events about this server")
	v.completeFlag(c, "user", userNames)
	v.completeFlag(c, "server", serverNames)
	v.completeFlag(c, "type", fixed("login", "session", "sshd_login", "user", "project", "server"))
	return c
}

// followAudit prints the events after seq that f selects as they arrive,
// until Ctrl-C or the end of the session.
func (v *invocation) followAudit(seq uint64, f *auditFilter) error {
	ctx, stop := v.interruptible()
	defer stop()
	if v.watch != nil && !v.jsonOut && !v.quiet {
		fmt.Fprintln(v.errOut, "-- following the audit log; Ctrl-C stops --")
	}
	var index uint64
	for {
		var page []*raftstore.AuditEvent
		idx, err := raftstore.BlockingQuery(ctx, v.sh.store, index, tailWait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			i, evs, err := st.AuditSince(ws, seq, auditPage)
			page = evs
			return i, err
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range page {
			seq = e.Seq
			if f.match(e) {
				if err := v.tailLine(e); err != nil {
					return err
				}
			}
		}
		// A full page may not be all there is: read again at once.
		index = idx
		if len(page) == auditPage {
			index = 0
		}
	}
}

// tailLine prints one event: a line of text, of JSON, or its seq.
func (v *invocation) tailLine(e *raftstore.AuditEvent) error {
	var err error
	switch {
	case v.jsonOut:
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err = enc.Encode(newAuditView(e)); err == nil {
			_, err = fmt.Fprint(v.out, b.String())
		}
	case v.quiet:
		_, err = fmt.Fprintln(v.out, strconv.FormatUint(e.Seq, 10))
	default:
		actor := e.Actor
		if actor == "" {
			actor = "-"
		}
		_, err = fmt.Fprintf(v.out, "%-6d %s  %-22s %-12s %s\n", e.Seq, fmtTime(e.Time), clean(e.Type), clean(actor), cell(auditDetails(e.Fields)))
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
