// Package fault holds errors that carry the HTTP status and a stable code chosen where they start.
package fault

import (
	"errors"
	"fmt"
)

// Error is an error with the status, code and message a client should see.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with status and a formatted message; its Code is
// left empty.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf returns the status of the *Error err wraps, if it wraps one.
func StatusOf(err error) (int, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, true
	}
	return 0, false
}
