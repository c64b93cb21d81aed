package api

// SearchResult answers GET /v1/search.
type SearchResult struct {
	Hits []SearchHit `json:"hits"`
}

// SearchHit is one session a search found.
type SearchHit struct {
	Session string `json:"session"`
	User    string `json:"user"`
	Server  string `json:"server"`
	Project string `json:"project"`
	// Start is when the session began (RFC 3339).
	Start string `json:"start"`
	// Offset is the moment, in seconds into the recording, the text first
	// shows (with InOutput); the console's player seeks there.
	Offset float64 `json:"offset"`
	// Recording names the recording Offset is in when it is not the
	// session's first: "<id>-2", ... (another channel's).
	Recording string `json:"recording,omitempty"`
	// Text is the output line, exec command or sftp path holding the text.
	Text     string `json:"text"`
	InOutput bool   `json:"in_output"`
}
