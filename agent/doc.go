// Package agent is rampart-agent: it enrolls a server with the cluster, then
// long-polls the cluster for what the server must look like and has the host
// appliers (agent/hostapply) make it so.
package agent
