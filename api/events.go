package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Outcomes of a login on a target's sshd.
const (
	LoginAccepted = "accepted"
	LoginFailed   = "failed"
)

// Bounds of POST /v1/agents/events. An agent clamps what it reads from
// sshd's log to them before spooling it (LoginEvent.Clamp), so that the
// cluster never refuses a batch the agent would retry forever.
const (
	// MaxLoginEventBatch is the most events one request may carry.
	MaxLoginEventBatch = 200
	// MaxLoginUserLen bounds the user name: sshd logs whatever name a client
	// asked for, up to 100 bytes, escaped.
	MaxLoginUserLen = 256
	// MaxLoginKeyIDLen bounds a certificate key id.
	MaxLoginKeyIDLen = 1024
	// MaxLoginReasonLen bounds the reason of a failure.
	MaxLoginReasonLen = 1024
	// MaxLoginShortLen bounds the method, key type and fingerprints.
	MaxLoginShortLen = 128
)

// AgentEventsRequest is POSTed by an agent to /v1/agents/events: login
// events in the order sshd logged them, each numbered by the agent's spool.
// The cluster records each seq once, so a batch may be sent again after a
// lost answer. An empty batch only asks for LastSeq.
type AgentEventsRequest struct {
	Events []LoginEvent `json:"events"`
}

// AgentEventsResponse acknowledges a batch: every event up to LastSeq is
// recorded (Accepted of them now, Duplicates before), and the agent may
// forget them.
type AgentEventsResponse struct {
	LastSeq    uint64 `json:"last_seq"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
}

// LoginEvent is one login on a target as its sshd logged it: accepted, or a
// connection that ended without being authenticated.
type LoginEvent struct {
	// Seq numbers the agent's events from 1, increasing, never reused.
	Seq uint64 `json:"seq"`
	// Time is when sshd logged the outcome (when the agent read the line if
	// the log has no timestamps).
	Time    time.Time `json:"time"`
	Outcome string    `json:"outcome"`
	// User is the account asked for (for a failure, possibly one that does
	// not exist, or empty).
	User string `json:"user"`
	// Source and Port are the client's address, as sshd saw it.
	Source string `json:"source"`
	Port   int    `json:"port,omitempty"`
	// Method is sshd's authentication method (publickey, password, ...).
	Method string `json:"method,omitempty"`
	// KeyType and Fingerprint name the key offered (ED25519-CERT SHA256:…);
	// for a certificate KeyID, Serial and CAFingerprint say which one.
	KeyType       string `json:"key_type,omitempty"`
	Fingerprint   string `json:"fingerprint,omitempty"`
	KeyID         string `json:"key_id,omitempty"`
	Serial        string `json:"serial,omitempty"`
	CAFingerprint string `json:"ca_fingerprint,omitempty"`
	// Reason is why a login failed, in sshd's words.
	Reason string `json:"reason,omitempty"`
}

// Validate checks an event as the cluster receives it.
func (e *LoginEvent) Validate() error {
	switch {
	case e.Seq == 0:
		return fmt.Errorf("seq is 0")
	case e.Time.IsZero():
		return fmt.Errorf("time is missing")
	case e.Time.Year() < 1970 || e.Time.Year() > 9999:
		return fmt.Errorf("time %s is out of range", e.Time.UTC().Format(time.RFC3339))
	case e.Outcome != LoginAccepted && e.Outcome != LoginFailed:
		return fmt.Errorf("outcome %q is neither %s nor %s", e.Outcome, LoginAccepted, LoginFailed)
	case e.Port < 0 || e.Port > 65535:
		return fmt.Errorf("port %d is outside 0..65535", e.Port)
	}
	if _, err := netip.ParseAddr(e.Source); err != nil {
		return fmt.Errorf("source %q is not an IP address", e.Source)
	}
	if e.Serial != "" {
		if _, err := strconv.ParseUint(e.Serial, 10, 64); err != nil {
			return fmt.Errorf("serial %q is not a decimal 64-bit number", e.Serial)
		}
	}
	for _, f := range e.textFields() {
		if len(*f.v) > f.max {
			return fmt.Errorf("%s is longer than %d bytes", f.name, f.max)
		}
		if !printable(*f.v) {
			return fmt.Errorf("%s holds invalid UTF-8 or a control character", f.name)
		}
	}
	return nil
}

// Clamp makes an event read from a log fit Validate's text bounds: invalid
// UTF-8 and control characters become U+FFFD and over-long fields are cut.
// It does not invent a missing seq, time, outcome, user or source.
func (e *LoginEvent) Clamp() {
	for _, f := range e.textFields() {
		*f.v = clampText(*f.v, f.max)
	}
}

type textField struct {
	name string
	v    *string
	max  int
}

func (e *LoginEvent) textFields() []textField {
	return []textField{
		{"user", &e.User, MaxLoginUserLen},
		{"method", &e.Method, MaxLoginShortLen},
		{"key_type", &e.KeyType, MaxLoginShortLen},
		{"fingerprint", &e.Fingerprint, MaxLoginShortLen},
		{"key_id", &e.KeyID, MaxLoginKeyIDLen},
		{"ca_fingerprint", &e.CAFingerprint, MaxLoginShortLen},
		{"reason", &e.Reason, MaxLoginReasonLen},
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// clampText replaces what printable refuses and cuts s to at most max bytes
// on a rune boundary.
func clampText(s string, max int) string {
	if !printable(s) {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return utf8.RuneError
			}
			return r
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
