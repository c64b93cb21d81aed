package hostapply

import (
	"errors"
	"fmt"
)

// Kind says what a Change or Problem is about.
type Kind string

const (
	KindUser       Kind = "user"
	KindGroup      Kind = "group"
	KindPrincipals Kind = "principals"
	KindSudo       Kind = "sudo"
	KindSSHD       Kind = "sshd"
)

// Change is one thing Apply changed on the server.
type Change struct {
	Kind Kind
	// Name is the user, group or entitlement, or the file for sshd.
	Name string
	// Action is what happened: create, update, deprovision, delete, write,
	// remove, reload.
	Action string
	// Detail says what was updated, where that is more than Action.
	Detail string
}

func (c Change) String() string {
	s := fmt.Sprintf("%s %s: %s", c.Kind, c.Name, c.Action)
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// Problem is something Apply refused or failed to do. Err wraps ErrInvalid,
// ErrConflict or ErrRejected, or a command's *ExitError.
type Problem struct {
	Kind Kind
	Name string
	Err  error
}

func (p Problem) Error() string { return fmt.Sprintf("%s %s: %v", p.Kind, p.Name, p.Err) }

func (p Problem) Unwrap() error { return p.Err }

// Report is what one Apply did.
type Report struct {
	Changes  []Change
	Problems []Problem
	// Reloaded: sshd was reloaded.
	Reloaded bool
	// Withheld are active accounts left without certificate access (no
	// principals file) because sshd could not be shown to hold them to
	// certificates only; the state is not fully applied.
	Withheld []string
}

// Err joins the problems, or is nil when there were none.
func (r *Report) Err() error {
	errs := make([]error, len(r.Problems))
	for i, p := range r.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// ProblemsFor returns the problems about kind and name.
func (r *Report) ProblemsFor(kind Kind, name string) []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Kind == kind && p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func (r *Report) change(kind Kind, name, action, detail string) {
	r.Changes = append(r.Changes, Change{Kind: kind, Name: name, Action: action, Detail: detail})
}

func (r *Report) problem(kind Kind, name string, err error) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Name: name, Err: err})
}
