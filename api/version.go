package api

// Version is the release of this build, shared by the three binaries and
// reported to peers.
const Version = "0.1.0-dev"
