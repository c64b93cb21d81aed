package jump

// Audit event types of the jump (docs/audit-events.md). Every event of a
// proxied connection carries its session id in the "session" field.
const (
	EventSessionOpen      = "session.open"
	EventSessionClose     = "session.close"
	EventSessionShell     = "session.shell"
	EventSessionExec      = "session.exec"
	EventSessionSubsystem = "session.subsystem"
	// EventForwardOpen is a port forward let through; its "kind" field is
	// local or remote.
	EventForwardOpen   = "forward.open"
	EventForwardRefuse = "forward.refuse"
	EventJumpRefuse    = "jump.refuse"
	// EventHostKeyFallBack: the target showed no host certificate and was
	// checked against the host key pinned at enrollment.
	EventHostKeyFallBack = "host_key.fall_back"
	EventRecordingFail   = "recording.fail"
	// EventRecordingSave: a recording was closed; path and SHA-256.
	EventRecordingSave = "recording.save"
)
