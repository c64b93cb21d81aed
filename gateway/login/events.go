package login

import "github.com/rampart-ssh/rampart/gateway/control"

// Audit event types of sign-in (docs/audit-events.md).
const (
	// EventBindingRevoke is the one an administrator's revocation writes
	// too; "by": "self" marks a person's own.
	EventBindingRevoke = control.EventBindingRevoke
	// EventBindingFlag: a key bound from a host none of the person's
	// earlier bindings came from ("reason": "new_address").
	EventBindingFlag = "binding.flag"
	// EventUserAdopt: a sign-in took over the record SCIM made.
	EventUserAdopt = "user.adopt"
	// EventLoginNameCollide: a new subject signed in with a login other
	// subjects hold and got a unix name of its own.
	EventLoginNameCollide = "login_name.collide"
)
