package adminshell

// Audit event types the shell writes itself, for the commands that change
// things outside the service layer (docs/audit-events.md). Changes made
// through gateway/control are audited there.
const (
	EventClusterSnapshot    = "cluster.snapshot"
	EventLeadershipTransfer = "leadership.transfer"
	EventRecordingReplay    = "recording.replay"
)
