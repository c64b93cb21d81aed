// Package recording writes each pty session as an asciicast v2 file that
// `asciinema play` accepts, on disk within a second, with its sha256 at close.
//
// A Recorder owns one file, dir/YYYY-MM-DD/<session>.cast (mode 0600), and a
// background flusher; what happens when the disk fails is the project's
// choice (FailClosed ends the session, FailOpen reports once and carries on).
// Replay and Reader read recordings back for `sessions replay`.
package recording
