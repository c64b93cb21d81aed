// Package access is the one answer to "who may reach what": the jump's
// decision (Authorize), the greeting's list (Destinations), an agent's
// desired accounts (AgentView) and the admin shell's explanation (Explain)
// all come from one evaluation of user, group, grant, login, server and
// project policy, so they cannot disagree.
package access
