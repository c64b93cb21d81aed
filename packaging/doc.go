// Package packaging holds the .deb and .rpm definitions of rampartd and
// rampart-agent (nfpm configurations, systemd units, maintainer scripts) and
// the test that builds, installs and verifies them; it has no Go API.
package packaging
