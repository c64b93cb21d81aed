package api

// Headers of GET /v1/sessions/{id}/recording, whose body is the session's
// asciicast v2 file.
const (
	// RecordingSHA256Header is the SHA-256 of the body, as the cluster
	// recorded it for the copy the body came from.
	RecordingSHA256Header = "X-Rampart-Recording-Sha256"
	// RecordingNodeHeader names the node whose copy it is.
	RecordingNodeHeader = "X-Rampart-Recording-Node"
	// RecordingPartialHeader is "true" for a copy that ends where the node
	// carrying the session was lost mid-session.
	RecordingPartialHeader = "X-Rampart-Recording-Partial"
)
