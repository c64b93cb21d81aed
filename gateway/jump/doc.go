// Package jump is the terminating proxy behind `ssh -J bastion target`: a
// direct-tcpip request to an enrolled server is answered by an SSH server of
// our own on that channel, which checks the requested login, mints a per-hop
// certificate, dials the target, and bridges every channel and request.
// Nothing is ever forwarded as plain bytes, so the bastion is no open relay.
package jump
