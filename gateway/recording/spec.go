package recording

// Spec says what to record of one pty session, and how: the jump fills it
// in, the node's archive starts the file from it.
type Spec struct {
	// Name names the recording: the session id for a connection's first,
	// then "<id>-2", "<id>-3", ... for further pty channels on it.
	Name string
	// Session is the session's id ("" means Name).
	Session string
	// Width and Height are the terminal's size and Term its type, from
	// the pty request.
	Width, Height int
	Term          string
	// Command is the exec request's command when the session has no
	// terminal: its stdout and stderr are recorded, and the command goes
	// into the header.
	Command string
	// RecordInput: the project records what the person types.
	RecordInput bool
	// FailOpen is the project's failure policy (gateway/jump decides it): a
	// recording that fails is reported once and the session goes on
	// unrecorded; otherwise every later call returns the error.
	FailOpen bool
	// Failed is called once if the recording fails later (a full disk
	// found by the recorder's flusher, say); it does not block.
	Failed func(error)
}
