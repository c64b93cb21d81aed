// Package fault holds errors that carry the HTTP status and a stable code
// chosen where they start, so that services below the API can refuse a
// request without importing it, and the API answers with what they chose.
package fault

import (
	"errors"
	"fmt"
)

// Error is a refusal with the status and message a client should see. Msg
// is user-facing: it never carries internals (no stack, no path, no
// upstream response body).
type Error struct {
	// Status is the HTTP status of the answer.
	Status int
	// Code is a stable machine-readable name of the refusal, for callers
	// that branch on it; empty when the status says enough.
	Code string
	// Msg is the message the client sees.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error of status whose message is formatted from
// format and args.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf returns the status of the first *Error in err's chain, and
// whether there is one.
func StatusOf(err error) (int, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, true
	}
	return 0, false
}
