package api

// How the cluster turns what an identity provider calls a person (and their
// groups) into names on a server: one rule for sign-in and SCIM alike, built
// on the unix-name rule the agent applies (unixname.go).

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnsafeName is wrapped by every refusal of a claimed name.
var ErrUnsafeName = errors.New("cannot be used as a unix account name")

// BaseUnixName derives the unix name a claimed login asks for, or refuses it.
//
// The rule, which is documented for operators in docs/login.md:
//  1. an e-mail style login keeps only the part before the last '@';
//  2. ASCII letters are lowercased, and '.' becomes '_' (jane.doe → jane_doe);
//  3. the result must be a unix name the agent creates (ValidUnixName):
//     match [a-z_][a-z0-9_-]*, be at most 32 characters, and not be a
//     reserved or system name. Nothing else is rewritten: a claim that needs
//     more than that is refused, not guessed at.
func BaseUnixName(login string) (string, error) {
	name := login
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		case r == '.':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	name = b.String()
	quoted := strconv.QuoteToASCII(login)
	switch {
	case name == "":
		return "", fmt.Errorf("login %s is empty: %w", quoted, ErrUnsafeName)
	case len(name) > MaxUnixNameLen:
		return "", fmt.Errorf("login %s is longer than %d characters: %w", quoted, MaxUnixNameLen, ErrUnsafeName)
	case !IsPOSIXName(name):
		return "", fmt.Errorf("login %s has characters other than letters, digits, '_', '-' and '.', or starts with a digit or '-': %w", quoted, ErrUnsafeName)
	case IsReservedUnixName(name):
		return "", fmt.Errorf("login %s maps to the reserved system name %q: %w", quoted, name, ErrUnsafeName)
	}
	return name, nil
}

// ResolveCollision returns the first of base, base-2, base-3, … that taken
// reports free, truncating base so the result stays within MaxUnixNameLen.
// The first person to log in keeps the plain name; later ones get suffixes in
// order of first login, and a name once given never changes.
func ResolveCollision(base string, taken func(string) (bool, error)) (string, error) {
	for i := 1; i < 1000; i++ {
		cand := base
		if i > 1 {
			suffix := "-" + strconv.Itoa(i)
			cand = base[:min(len(base), MaxUnixNameLen-len(suffix))] + suffix
		}
		if ValidUnixName(cand) != nil {
			continue // e.g. "systemd" free but "systemd-2" reserved
		}
		t, err := taken(cand)
		if err != nil {
			return "", err
		}
		if !t {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free unix name for %q: %w", base, ErrUnsafeName)
}

// maxGroupLen bounds a group name taken from the IdP.
const maxGroupLen = 128

// SafeGroupName is the rule every group name from the IdP follows, from an
// ID token or from SCIM: printable, without control characters, ',' or ':',
// of a sane length. Group names reach grants and, through the agent,
// /etc/group (where the agent applies the stricter POSIX rules).
func SafeGroupName(s string) bool {
	if s == "" || len(s) > maxGroupLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == ',' || r == ':' {
			return false
		}
	}
	return true
}
