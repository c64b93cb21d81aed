package enroll

// Audit event types of enrollment and renewal (docs/audit-events.md).
const (
	EventServerEnroll     = "server.enroll"
	EventEnrollmentRefuse = "enrollment.refuse"
	EventAgentCertRenew   = "agent_cert.renew"
	EventHostCertRenew    = "host_cert.renew"
)
