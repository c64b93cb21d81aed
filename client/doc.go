// Package client is the typed HTTPS client of the cluster API: the agent,
// a joining node, the e2e tests and the CLI reach the cluster through it.
// It also holds the trust rules a client applies before it has the cluster
// CA (the CA pin of a token, the role a cluster certificate names).
package client
