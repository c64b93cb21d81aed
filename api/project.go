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
	CertTTL string `json:"cert_ttl,omitempty"`
	// Recording: absent when creating a project means on; absent when
	// replacing one keeps its setting.
	Recording          *bool    `json:"recording,omitempty"`
	RecordInput        bool     `json:"record_input"`
	RecordingFailOpen  bool     `json:"recording_fail_open"`
	AllowLocalForward  bool     `json:"allow_local_forward"`
	AllowRemoteForward bool     `json:"allow_remote_forward"`
	AllowAgentForward  bool     `json:"allow_agent_forward"`
	SharedLogins       []string `json:"shared_logins,omitempty"`
	IdleTimeout        string   `json:"idle_timeout,omitempty"`
	MaxSessionDuration string   `json:"max_session,omitempty"`
	// LegacyMaxSessionDuration is max_session under the name the API
	// used before (max_session_duration): accepted on input, never written.
	LegacyMaxSessionDuration string `json:"max_session_duration,omitempty"`

	// RequireHostCertificate refuses targets that present no host
	// certificate (no fallback to the host key pinned at enrollment).
	RequireHostCertificate bool `json:"require_host_certificate"`
	// ServerNames are the project's target name rules: glob patterns
	// (*.web.example.com, web-*) that every name an enrollment asks for
	// must match one of; empty allows any name that is not a node's.
	ServerNames []string `json:"server_names,omitempty"`
	// AllowPersonalKeys lets the project's servers accept keys from the
	// accounts' own authorized_keys (weaker: such logins skip the bastion).
	AllowPersonalKeys bool `json:"allow_personal_keys"`
}

// IndexHeader carries the raft index of the data in a response; a client
// passes it back as ?index= to block until something newer exists.
const IndexHeader = "X-Rampart-Index"

// Server is an enrolled server as the API shows and accepts it. Manual
// registration (PUT /v1/servers/{id}) is for automation and tests; agents
// enroll themselves.
type Server struct {
	ID       string            `json:"id"`
	Project  string            `json:"project"`
	Name     string            `json:"name"`
	AltNames []string          `json:"alt_names,omitempty"`
	Addr     string            `json:"addr"`
	SSHPort  int               `json:"ssh_port,omitempty"`
	HostKeys []string          `json:"host_keys,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Grant gives an IdP group access to a project.
type Grant struct {
	Role string   `json:"role,omitempty"`
	Sudo []string `json:"sudo,omitempty"`
}

// CAKeys lists CA public keys in authorized_keys format: the keys to trust.
type CAKeys struct {
	Keys []string `json:"keys"`
}
