package adminshell

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// the audit exporter's cursors in raft: listing them, and removing the
// cursor of a sink taken out of the configuration (every cursor holds audit
// retention back).

type exportCursorView struct {
	Sink         string     `json:"sink"`
	Seq          uint64     `json:"seq"`
	Node         string     `json:"node"`
	At           time.Time  `json:"at"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

func (v *invocation) auditExportCursorsCmd() *cobra.Command {
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the export sinks' cursors (each holds audit retention back)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			_, cursors, err := v.state().AuditExportCursors(nil)
			if err != nil {
				return err
			}
			views := make([]exportCursorView, len(cursors))
			ids := make([]string, len(cursors))
			for i, c := range cursors {
				views[i] = exportCursorView{Sink: c.Sink, Seq: c.Seq, Node: c.Node, At: c.At.UTC()}
				if !c.FailingSince.IsZero() {
					at := c.FailingSince.UTC()
					views[i].FailingSince = &at
				}
				ids[i] = c.Sink
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "SINK", "DELIVERED_SEQ", "NODE", "AT", "FAILING_SINCE")
				for _, c := range views {
					failing := "-"
					if c.FailingSince != nil {
						failing = c.FailingSince.Format(time.RFC3339)
					}
					t.row(c.Sink, c.Seq, c.Node, c.At, failing)
				}
				return t.flush()
			})
		},
	}
	var yes bool
	rm := &cobra.Command{
		Use: "rm SINK", Aliases: []string{"delete"}, Short: "Remove a sink's cursor, so that it no longer holds audit retention back",
		Long: "Remove the cursor of an export sink taken out of audit_export.sinks: every cursor\n" +
			"in the cluster holds audit retention back, so a removed sink's would keep the log\n" +
			"from being pruned forever. A sink still configured on a node starts again from\n" +
			"the oldest event kept (it is sent the log again).",
		Args: exactArgs("SINK"),
		RunE: func(_ *cobra.Command, args []string) error {
			sink := args[0]
			if _, c, err := v.state().AuditExportCursorOf(nil, sink); err != nil {
				return err
			} else if c == nil {
				return fmt.Errorf("export sink %q has no cursor: %w", sink, raftstore.ErrNotFound)
			}
			if err := v.confirm(yes, fmt.Sprintf("remove the export cursor of sink %s", sink)); err != nil {
				return err
			}
			res, err := v.applyOnly(&raftstore.AuditExportCursorDelete{Sink: sink, Actor: v.actor.Login, Fields: v.auditContext(), Now: v.sh.now().UTC()})
			if err != nil {
				return err
			}
			var was raftstore.AuditExportCursor
			if err := res.Decode(&was); err != nil {
				return err
			}
			return v.done(nil, "export cursor of sink %s removed (it had delivered through seq %d)", sink, was.Seq)
		},
	}
	rm.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return group("export-cursors", "The audit export sinks' cursors in the cluster", nil, ls, rm)
}
