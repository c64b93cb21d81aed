// Package httpapi is a node's HTTPS API: cluster join and membership for
// nodes, the agent endpoints (enroll, state long-poll, renewal, login
// events, install script and binary), the public CA keys, and the admin
// routes for projects, grants, servers and members. It is a thin surface:
// changes go through gateway/control, decisions come from gateway/access,
// enrollment from gateway/enroll. Errors are JSON with a message meant for
// people (a gateway/fault error's), never internals.
package httpapi
