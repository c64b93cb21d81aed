package adminshell

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// errBackupInteractive: a backup is bytes for a file, not for a terminal.
var errBackupInteractive = errors.New("a backup is written to standard output for a file: run it one-shot, as ssh admin@bastion cluster backup > FILE")

// clusterBackupCmd writes a backup of the replicated state to standard
// output (control.Backup audits it); what it wrote is said on standard
// error, so that standard output is the backup alone.
func (v *invocation) clusterBackupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup",
		Short: "Write a consistent backup of the cluster's state to standard output (ssh admin@bastion cluster backup > FILE)",
		Long: "Write a consistent backup of the cluster's state to standard output: a header line\n" +
			"with the raft index, the raft snapshot, and a last line with the SHA-256 of\n" +
			"everything before it. CA keys stay sealed under the key-encryption key, which\n" +
			"is not in the backup. Restore it with rampartd restore --from FILE (docs/operations.md).",
		Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if v.interactive {
				return errBackupInteractive
			}
			info, err := v.sh.control.Backup(v.ctx, v.controlActor(), v.raw, nil)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(v.errOut, "backup of cluster %s at raft index %d (term %d) from node %s: %d bytes of snapshot, SHA-256 %s\n",
				cell(info.Header.ClusterID), info.Header.Index, info.Header.Term, cell(info.Header.Node), info.Header.Size, info.SHA256)
			return err
		},
	}
}
