package raftstore

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxClientText bounds a string a client chose (an SSH user name, a login
// asked for, a destination) in an audit field: the audit log is replicated
// and kept, and a client may send hundreds of kilobytes in one.
const MaxClientText = 256

// TruncatedMark ends a string BoundText cut.
const TruncatedMark = "…[truncated]"

// ClientText is BoundText(s, MaxClientText).
func ClientText(s string) string { return BoundText(s, MaxClientText) }

// BoundText makes a string a client chose fit an audit field: invalid UTF-8
// and control characters become U+FFFD (AuditAppend refuses invalid UTF-8,
// and a newline or escape would forge lines in a text export), and a string
// longer than limit bytes is cut on a rune boundary and ends in TruncatedMark,
// the whole at most limit bytes.
func BoundText(s string, limit int) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return utf8.RuneError
			}
			return r
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= limit {
		return s
	}
	cut := max(limit-len(TruncatedMark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMark
}
