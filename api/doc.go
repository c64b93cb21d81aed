// Package api holds what the gateway, the agent and the client share: HTTPS
// request and response bodies, the token format, and the rules both sides
// apply (unix names, sudo rules, certificate lifetimes, the identity and pin
// of a cluster certificate), each defined once.
package api
