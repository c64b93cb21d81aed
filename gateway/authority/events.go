package authority

// EventNodeCertRenew is the audit event of a node renewing its own cluster
// TLS certificate (docs/audit-events.md).
const EventNodeCertRenew = "node_cert.renew"
