package api

// Project is a project as the API shows and accepts it.
type Project struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Settings    ProjectSettings `json:"settings"`
	ModifyIndex uint64          `json:"modify_index,omitempty"`
}

// ProjectSettings are a project's policies. Durations are Go duration strings
// ("3m", "1h").
type ProjectSettings struct {
	CertTTL            string   `json:"cert_ttl,omitempty"`
	Recording          bool     `json:"recording"`
	RecordInput        bool     `json:"record_input"`
	RecordingFailOpen  bool     `json:"recording_fail_open"`
	AllowLocalForward  bool     `json:"allow_local_forward"`
	AllowRemoteForward bool     `json:"allow_remote_forward"`
	AllowAgentForward  bool     `json:"allow_agent_forward"`
	SharedLogins       []string `json:"shared_logins,omitempty"`
	IdleTimeout        string   `json:"idle_timeout,omitempty"`
	MaxSessionDuration string   `json:"max_session_duration,omitempty"`
}

// IndexHeader carries the raft index of the data in a response; a client
// passes it back as ?index= to block until something newer exists.
const IndexHeader = "X-Rampart-Index"
