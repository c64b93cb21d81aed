package api

import "time"

// MachineIDHeader carries the agent's machine id on every pull, so that a
// cloned server (same credential, other machine) is told to re-enroll.
const MachineIDHeader = "X-Rampart-Machine-ID"

// Enrollment methods.
const (
	EnrollToken = "token"
	EnrollAWS   = "aws"
	EnrollGCP   = "gcp"
)

// EnrollRequest is POSTed by an agent to /v1/agents/enroll. The agent keeps
// its private key and sends only the public key; Secret is the enrollment
// token's secret (token method).
type EnrollRequest struct {
	Method    string            `json:"method"`
	Secret    string            `json:"secret,omitempty"`
	MachineID string            `json:"machine_id"`
	Name      string            `json:"name"`
	AltNames  []string          `json:"alt_names,omitempty"`
	Addr      string            `json:"addr"`
	SSHPort   int               `json:"ssh_port,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// HostKeys are the server's sshd host public keys (authorized_keys
	// format); the cluster pins them and certifies them.
	HostKeys []string `json:"host_keys"`
	// PublicKey is the agent's TLS public key (PEM, PKIX).
	PublicKey string `json:"public_key"`
	// AWS method: the instance identity document exactly as IMDS served it,
	// with either AWSSignature (/signature, base64) or AWSPKCS7 (/rsa2048,
	// base64 PKCS #7 embedding the document; AWSDocument may then be empty).
	AWSDocument  string `json:"aws_document,omitempty"`
	AWSSignature string `json:"aws_signature,omitempty"`
	AWSPKCS7     string `json:"aws_pkcs7,omitempty"`
	// GCPToken (GCP method) is the instance identity token (format=full)
	// the metadata server issued for the cluster's audience.
	GCPToken string `json:"gcp_token,omitempty"`
}

// EnrollResponse gives the agent its identity and what its sshd must trust.
type EnrollResponse struct {
	ServerID    string    `json:"server_id"`
	Project     string    `json:"project"`
	CertPEM     string    `json:"cert_pem"`
	CAPEM       string    `json:"ca_pem"`
	CertExpires time.Time `json:"cert_expires"`
	// HostCerts are host certificates (authorized_keys format), one per host
	// key, signed by the cluster's target host CA for the server's names.
	HostCerts []string `json:"host_certs"`
	// UserCAKeys are the project's user CA keys sshd must trust.
	UserCAKeys []string `json:"user_ca_keys"`
}

// AgentState is what an agent's server must look like: GET
// /v1/agents/state?index=N&wait=60s returns it when anything in it changed
// after index N. The agent adds &applied=M, the index of the newest state
// it has applied, which the cluster records for the jump (AgentAppliedParam).
type AgentState struct {
	Index        uint64        `json:"index"`
	ServerID     string        `json:"server_id"`
	Project      string        `json:"project"`
	Users        []AgentUser   `json:"users"`
	Groups       []AgentGroup  `json:"groups"`
	Entitlements []Entitlement `json:"entitlements"`
	UserCAKeys   []string      `json:"user_ca_keys"`
	// HostCAKey is the host CA that signs host certificates now
	// (authorized_keys format): an agent whose host certificates another
	// CA signed renews them (POST /v1/agents/hostcerts).
	HostCAKey string `json:"host_ca_key,omitempty"`
	// Cluster lists the API addresses (host:port) of the cluster's nodes
	// now; the agent keeps them and fails over among them.
	Cluster []string `json:"cluster,omitempty"`
	// AllowPersonalKeys is the project's setting: when false, sshd lets
	// the accounts the agent manages in with certificates only.
	AllowPersonalKeys bool `json:"allow_personal_keys"`
	// SharedLogins are the project's shared accounts (e.g. deploy). Each
	// must already exist on the server; the agent gives it a principals
	// file naming the login, the principal of the per-hop certificate the
	// cluster mints for it.
	SharedLogins []string `json:"shared_logins,omitempty"`
}

// AgentHostCertsResponse answers POST /v1/agents/hostcerts: fresh host
// certificates for the host keys the cluster pinned at enrollment, signed by
// the current host CA.
type AgentHostCertsResponse struct {
	// HostCerts are host certificates (authorized_keys format), one per
	// pinned host key.
	HostCerts []string `json:"host_certs"`
	// HostCAKey is the CA that signed them.
	HostCAKey string `json:"host_ca_key"`
}

// AgentAppliedParam is the query parameter of GET /v1/agents/state that
// carries the index of the newest state the agent has applied.
const AgentAppliedParam = "applied"

// AgentUser is an account the agent keeps on its server. Status "active"
// accounts may log in; "disabled" and "deleted" ones are deprovisioned.
type AgentUser struct {
	Name   string   `json:"name"`
	UID    uint32   `json:"uid"`
	Login  string   `json:"login"`
	Status string   `json:"status"`
	Groups []string `json:"groups"`
	// Sudo names entitlements (in AgentState.Entitlements) the user holds.
	Sudo []string `json:"sudo,omitempty"`
}

// AgentGroup is a unix group the agent keeps.
type AgentGroup struct {
	Name string `json:"name"`
	GID  uint32 `json:"gid"`
}

// Entitlement is a structured sudo rule.
type Entitlement struct {
	Name     string        `json:"name"`
	Commands []SudoCommand `json:"commands"`
	RunAs    string        `json:"run_as,omitempty"`
	NoPasswd bool          `json:"nopasswd,omitempty"`
	NoExec   bool          `json:"noexec,omitempty"`
	SetEnv   bool          `json:"setenv,omitempty"`
	EnvKeep  []string      `json:"env_keep,omitempty"`
}

// SudoCommand is one command of an entitlement; Args nil means any
// arguments, an empty list no arguments.
type SudoCommand struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
}
