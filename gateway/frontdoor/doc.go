// Package frontdoor is a node's SSH server: it signs people in (bound key, or
// the OIDC device flow inside keyboard-interactive), bounds unauthenticated
// connections, and answers `ssh bastion` with who you are and where you may
// go. The jump proxy and the admin shell hang off the connections it admits.
package frontdoor
