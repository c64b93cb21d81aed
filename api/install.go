package api

import "time"

// DisableAutostartFile keeps rampart-agent from starting while it exists: the
// systemd unit the installer writes has ConditionPathExists=! on it, and the
// agent binary itself refuses to run (exit status 0, so no supervisor
// restarts it). Golden images carry it; first boot removes it.
const DisableAutostartFile = "/etc/rampart/disable-autostart"

// AgentSHA256Header carries the hex SHA-256 of the agent binary that
// GET /v1/agents/binary serves, so the installer can check what it received.
const AgentSHA256Header = "X-Rampart-SHA256"

// AgentRenewRequest is POSTed by an enrolled agent to /v1/agents/renew over
// its current mutual-TLS certificate. PublicKey is a freshly generated key
// (PEM, PKIX); the private key never leaves the agent.
type AgentRenewRequest struct {
	PublicKey string `json:"public_key"`
}

// AgentRenewResponse is the agent's new certificate, for the key it sent.
type AgentRenewResponse struct {
	CertPEM     string    `json:"cert_pem"`
	CertExpires time.Time `json:"cert_expires"`
}
