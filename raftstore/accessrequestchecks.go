package raftstore

import (
	"strings"
	"time"
	"unicode"
)

// The rules that keep one person from granting themselves access, and the
// leader's check of the time a request command carries.

// MaxProposalSkew is how far ahead of the leader's clock the time an access
// request command carries (the clock of the node that handled it) may be
// when it enters the log. A request's window is computed from that time, so
// a node whose clock runs ahead would otherwise hand out longer windows than
// asked.
const MaxProposalSkew = 5 * time.Second

// MaxProposalDelay is how far behind the leader's clock that time may be. A
// time behind only shortens a window, and a command is retried with the
// time it was made with through an election or a full queue (raft apply
// waits up to 30 s), so this bound is looser: an honest command that waited
// is not refused as if the clocks were wrong.
const MaxProposalDelay = 2 * time.Minute

// timedCommand is a command whose outcome depends on the time it carries:
// the leader refuses it (admit) when that time is too far from its own.
type timedCommand interface {
	proposedAt() time.Time
}

func (c *AccessRequestCreate) proposedAt() time.Time  { return c.Now }
func (c *AccessRequestApprove) proposedAt() time.Time { return c.Now }
func (c *AccessRequestDeny) proposedAt() time.Time    { return c.Now }
func (c *AccessRequestRevoke) proposedAt() time.Time  { return c.Now }
func (c *AccessRequestExpire) proposedAt() time.Time  { return c.Now }

// admit is the leader's check of a decoded command before it enters the
// log: what depends on the leader's own view (its clock) and so cannot be
// checked again when the log is replayed.
func admit(cmd Command, now time.Time) error {
	tc, ok := cmd.(timedCommand)
	if !ok {
		return nil
	}
	skew := tc.proposedAt().Sub(now)
	if skew > MaxProposalSkew || skew < -MaxProposalDelay {
		return invalidf("the clock of the node that handled this is %s off the leader's (at most %s ahead or %s behind allowed): "+
			"synchronize the nodes' clocks (NTP) and try again", skew.Round(time.Second), MaxProposalSkew, MaxProposalDelay)
	}
	return nil
}

// samePerson reports whether the accounts a and b are one person: the same
// user id, or two accounts with the same e-mail address (compared without
// regard to case). A service token ("api:" and its name) is nobody's
// account. email returns a user's address, "" if none.
func samePerson(a, b string, email func(id string) string) bool {
	if a == b {
		return true
	}
	ea, eb := strings.TrimSpace(email(a)), strings.TrimSpace(email(b))
	return ea != "" && strings.EqualFold(ea, eb)
}

func samePersonTxn(tx *writeTxn, a, b string) bool {
	return samePerson(a, b, func(id string) string {
		raw, err := tx.First(tableUsers, "id", id)
		if err != nil || raw == nil {
			return ""
		}
		return raw.(*User).Email
	})
}

// SamePerson is samePerson on this replica: the service refuses early what
// the state machine would.
func (s *State) SamePerson(a, b string) bool {
	return samePerson(a, b, func(id string) string {
		if _, u, err := s.UserByID(nil, id); err == nil && u != nil {
			return u.Email
		}
		return ""
	})
}

// verifiedSamePerson is samePerson where it allows something (a person
// giving up their own request from another account): the same account, or
// two whose shared address the identity provider verified for both. An
// address anyone may set on their own account must not let them act as
// someone else. user returns an account, nil if none.
func verifiedSamePerson(a, b string, user func(id string) *User) bool {
	if a == b {
		return true
	}
	ua, ub := user(a), user(b)
	if ua == nil || ub == nil || !ua.EmailVerified || !ub.EmailVerified {
		return false
	}
	ea, eb := strings.TrimSpace(ua.Email), strings.TrimSpace(ub.Email)
	return ea != "" && strings.EqualFold(ea, eb)
}

func verifiedSamePersonTxn(tx *writeTxn, a, b string) bool {
	return verifiedSamePerson(a, b, func(id string) *User {
		raw, err := tx.First(tableUsers, "id", id)
		if err != nil || raw == nil {
			return nil
		}
		return raw.(*User)
	})
}

// VerifiedSamePerson is verifiedSamePerson on this replica.
func (s *State) VerifiedSamePerson(a, b string) bool {
	return verifiedSamePerson(a, b, func(id string) *User {
		if _, u, err := s.UserByID(nil, id); err == nil {
			return u
		}
		return nil
	})
}

// approvalStandsTxn reports whether an earlier approval still counts: its
// approver is still active and still an approver of the project (or, for an
// administrator's approval, still active; for a service token's, the token
// still exists and has not expired).
func approvalStandsTxn(tx *writeTxn, a Approval, pol *RequestPolicy, now time.Time) bool {
	if name, ok := strings.CutPrefix(a.By, "api:"); ok {
		raw, err := tx.First(tableServiceTokens, "name", name)
		if err != nil || raw == nil {
			return false
		}
		t := raw.(*ServiceToken)
		return t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)
	}
	u, err := activeUserTxn(tx, a.By)
	if err != nil {
		return false
	}
	return a.Admin || pol.MayApprove(u.Groups)
}

// validReason is validText for the reasons of requests and decisions, which
// approvers read in their terminals and in chat: format characters (Unicode
// category Cf: bidirectional overrides, zero-width characters) are refused
// as well, so that a reason reads as what it says.
func validReason(s string) error {
	if err := validText("reason", s, maxRequestReason); err != nil {
		return err
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
		return invalidf("reason holds an invisible formatting character")
	}
	return nil
}
