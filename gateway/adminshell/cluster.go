package adminshell

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// cluster: raft membership and maintenance. These read this node's view and
// need no leader, so they work on a cluster that has lost its quorum.

func (v *invocation) clusterCmd() *cobra.Command {
	return group("cluster", "The raft cluster of bastion nodes", nil,
		v.clusterStatusCmd(), v.clusterMembersCmd(), v.clusterRemoveCmd(), v.clusterSnapshotCmd(), v.clusterTransferCmd(), v.clusterBackupCmd())
}

func (v *invocation) clusterStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show this node's view of the cluster", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st, err := v.sh.store.Status()
			if err != nil {
				return err
			}
			if st.Members == nil {
				st.Members = []raftstore.Member{}
			}
			voters := 0
			for _, m := range st.Members {
				if m.Voter {
					voters++
				}
			}
			// The CA pin is what auto-enrolling agents are configured with
			// (ca_pin), and what every enrollment token carries.
			view := struct {
				*raftstore.Status
				CAPin string `json:"ca_pin,omitempty"`
			}{Status: st}
			if v.sh.cluster != nil {
				view.CAPin = v.sh.cluster.CAPin()
			}
			return v.emit(view, []string{st.NodeID}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("node", fmt.Sprintf("%s (%s)", st.NodeID, st.State))
				leader := "none"
				if st.LeaderID != "" {
					leader = fmt.Sprintf("%s at %s", st.LeaderID, st.LeaderAddr)
				}
				d.add("leader", leader)
				d.add("term", st.Term)
				d.add("indexes", fmt.Sprintf("last %d, commit %d, applied %d", st.LastIndex, st.CommitIndex, st.AppliedIndex))
				d.add("state digest", st.StateDigest)
				d.add("members", fmt.Sprintf("%d (%d voters)", len(st.Members), voters))
				if view.CAPin != "" {
					d.add("cluster CA pin", view.CAPin)
				}
				return d.flush()
			})
		},
	}
}

func (v *invocation) clusterMembersCmd() *cobra.Command {
	return &cobra.Command{
		Use: "members", Short: "List the cluster's nodes", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st, err := v.sh.store.Status()
			if err != nil {
				return err
			}
			ms := nonNil(st.Members)
			ids := make([]string, len(ms))
			for i, m := range ms {
				ids[i] = m.ID
			}
			return v.emit(ms, ids, func(out io.Writer) error {
				t := newTable(out, "ID", "RAFT ADDRESS", "API ADDRESS", "SSH ADDRESS", "VOTER", "LEADER")
				for _, m := range ms {
					t.row(m.ID, m.RaftAddr, m.APIAddr, m.SSHAddr, m.Voter, m.Leader)
				}
				return t.flush()
			})
		},
	}
}

func (v *invocation) clusterRemoveCmd() *cobra.Command {
	var yes bool
	remove := &cobra.Command{
		Use: "remove NODE", Short: "Take a node out of the cluster", Args: exactArgs("NODE"),
		ValidArgsFunction: v.completeArgs(nodeIDs),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := v.sh.control.RemoveNode(v.ctx, v.controlActor(), args[0], v.confirmer(yes)); err != nil {
				return err
			}
			return v.done(nil, "node %s removed from the cluster", args[0])
		},
	}
	remove.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return remove
}

func (v *invocation) clusterSnapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use: "snapshot", Short: "Take a raft snapshot on this node now (compacts its log)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if err := v.sh.store.Snapshot(); err != nil {
				return err
			}
			if err := v.record(EventClusterSnapshot, map[string]string{"node": v.sh.nodeID}); err != nil {
				return err
			}
			return v.done(nil, "snapshot taken on node %s", cell(v.sh.nodeID))
		},
	}
}

func (v *invocation) clusterTransferCmd() *cobra.Command {
	return &cobra.Command{
		Use: "transfer-leadership", Short: "Hand leadership to another voter (run it on the leader)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if err := v.sh.store.TransferLeadership(); err != nil {
				if errors.Is(err, raftstore.ErrNotLeader) {
					leader := "the leader"
					if st, serr := v.sh.store.Status(); serr == nil && st.LeaderID != "" {
						leader = "the leader, " + st.LeaderID
					}
					return fmt.Errorf("this node is not the leader: run it on %s: %w", leader, err)
				}
				return err
			}
			if err := v.record(EventLeadershipTransfer, map[string]string{"node": v.sh.nodeID}); err != nil {
				return err
			}
			return v.done(nil, "leadership transferred away from node %s", cell(v.sh.nodeID))
		},
	}
}
