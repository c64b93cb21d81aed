// Package events reports the logins on this server's sshd to the cluster:
// a tailer follows sshd's log (journald or a log file), turns each
// connection into one login event (accepted, or failed with sshd's reason),
// and appends it to an on-disk spool together with the log position after
// it; a sender delivers the spool in order to POST /v1/agents/events and
// forgets only what the cluster acknowledged. The cluster records each event
// once however often it is sent, so nothing is lost while the cluster is
// unreachable or the agent restarts, and nothing is recorded twice.
package events
