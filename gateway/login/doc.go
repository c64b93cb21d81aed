// Package login signs people in: it runs the OIDC device flow against any
// standards identity provider, maps the ID token's claims to a Rampart user
// with a safe unix name, provisions that user just in time, and binds their
// SSH key to them for a while so later logins need no browser.
package login
