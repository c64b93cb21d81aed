// Package httpapi is a node's HTTPS API: cluster join and status for nodes
// and operators, and (growing with later work) the agent, admin, SCIM and
// metrics endpoints. Handlers validate what enters and answer errors as JSON
// with a message meant for people, never internals.
package httpapi
