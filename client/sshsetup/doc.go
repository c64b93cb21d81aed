// Package sshsetup edits a person's ~/.ssh for `rampart setup`: an
// @cert-authority block in known_hosts, an Include line at the top of
// ssh_config, and the included file it owns. It changes only what lies
// between its own markers, writes nothing when nothing changed, and takes
// out exactly what it put in, so that a removal leaves the files as they were.
package sshsetup
