// Package cloudid verifies the identity clouds give their instances: AWS's
// signed instance identity document and GCP's instance identity token, and
// maps the account or project they name to a Rampart project.
//
// A verifier only answers "which instance, of which project, is this?". Whether
// that instance may enroll (once, or again) is the caller's business: it
// needs the replicated store.
package cloudid

import (
	"errors"
	"fmt"
	"regexp"
)

// Kinds of refusal, for errors.Is. Every refusal is an *Error wrapping one.
var (
	// ErrMalformed: the evidence cannot be parsed.
	ErrMalformed = errors.New("malformed instance identity")
	// ErrForged: the signature does not verify against any trusted key.
	ErrForged = errors.New("instance identity signature is not valid")
	// ErrStale: the AWS document's pendingTime, or the GCP instance's
	// creation, is too old (or in the future).
	ErrStale = errors.New("instance identity is too old")
	// ErrExpired: the GCP token's expiry has passed.
	ErrExpired = errors.New("instance identity token has expired")
	// ErrAudience: the GCP token was issued for another audience.
	ErrAudience = errors.New("instance identity token is for another audience")
	// ErrUnmapped: the account or project is not mapped to a Rampart project.
	ErrUnmapped = errors.New("cloud account or project is not mapped to a Rampart project")
	// ErrUnavailable: the verifier could not reach the issuer (GCP discovery
	// or keys), so nothing could be decided.
	ErrUnavailable = errors.New("instance identity issuer unreachable")
)

// Error is a refused identity. Reason is written for the agent's operator and
// carries no internals; Error() adds the detail, for the node's log.
type Error struct {
	// Kind is one of the Err* values above.
	Kind error
	// Reason is safe to send back to the agent.
	Reason string
	// Detail is what went wrong underneath (a parse or crypto error), or nil.
	Detail error
}

func (e *Error) Error() string {
	if e.Detail == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail.Error()
}

// Unwrap lets errors.Is match Kind and what Detail wraps.
func (e *Error) Unwrap() []error {
	if e.Detail == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Detail}
}

func refuse(kind error, detail error, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...), Detail: detail}
}

// maxEvidence bounds each piece of evidence an agent sends (documents and
// tokens are about a kilobyte).
const maxEvidence = 16 << 10

var (
	awsAccountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	awsInstanceRE = regexp.MustCompile(`^i-[0-9a-f]{8,32}$`)
	// gcpProjectRE: GCP project ids are 6-30 lowercase letters, digits and
	// dashes, starting with a letter, not ending with a dash; old
	// domain-scoped projects carry a "domain:" prefix.
	gcpProjectRE  = regexp.MustCompile(`^([a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpInstanceRE = regexp.MustCompile(`^[0-9]{1,32}$`)
)

// ValidAWSAccount reports whether s is an AWS account id (12 digits).
func ValidAWSAccount(s string) bool { return awsAccountRE.MatchString(s) }

// ValidGCPProject reports whether s is a GCP project id.
func ValidGCPProject(s string) bool { return gcpProjectRE.MatchString(s) }
