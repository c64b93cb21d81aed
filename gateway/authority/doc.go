// Package authority is a node's certificate authority lifecycle: it unseals
// CA keys from the replicated store with the key-encryption key, creates a
// CA on first use (a project's user CA, the target and node host CAs),
// issues host and TLS certificates through package ca's pipelines, keeps the
// node's own certificates current, and plans CA key rotations.
package authority
