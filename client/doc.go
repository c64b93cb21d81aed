// Package client is the typed HTTPS client of the cluster API: the agent,
// a joining node, the e2e tests and the CLI reach the cluster through it.
// It also builds the TLS configuration a client uses before it has the
// cluster CA (PinnedTLS: the CA pin of a token, and only a node may answer);
// the certificate rules it checks (roles, identity, pin format) are api's.
package client
