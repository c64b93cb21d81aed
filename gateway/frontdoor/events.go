package frontdoor

// Audit event types of the front door (docs/audit-events.md).
const (
	// EventLoginAccept: a person signed in at the front door (bound key or
	// device flow).
	EventLoginAccept = "login.accept"
	// EventLoginRefuse: a sign-in refused before the IdP was asked
	// (disabled user, too many device flows from one source).
	EventLoginRefuse = "login.refuse"
	// EventLoginFail: a device-flow sign-in that did not complete.
	EventLoginFail = "login.fail"
	// EventLoginRevoke: a live connection cut because its binding was
	// revoked.
	EventLoginRevoke = "login.revoke"
	// EventAdminShellOpen and EventAdminShellClose bracket an admin shell;
	// EventAdminShellRefuse is one refused to someone not in the admin
	// group.
	EventAdminShellOpen   = "admin_shell.open"
	EventAdminShellClose  = "admin_shell.close"
	EventAdminShellRefuse = "admin_shell.refuse"
)
