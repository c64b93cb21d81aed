// Package api holds the wire types that the gateway, the agent and the client
// share: HTTPS request and response bodies, and the token format.
package api
