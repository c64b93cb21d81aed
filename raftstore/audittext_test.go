package raftstore

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundText(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ok/short", "alice", "alice"},
		{"ok/exactly-the-bound", strings.Repeat("a", MaxClientText), strings.Repeat("a", MaxClientText)},
		{"cut/long", strings.Repeat("a", 100_000), strings.Repeat("a", MaxClientText-len(TruncatedMark)) + TruncatedMark},
		{"cut/on-a-rune-boundary", long, long[:(MaxClientText-len(TruncatedMark))/2*2] + TruncatedMark},
		{"clean/invalid-utf8", "bob\xff\xfe", "bob\uFFFD"},
		{"clean/control", "bob\nroot\x1b[31m", "bob\uFFFDroot\uFFFD[31m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClientText(tc.in)
			if got != tc.want || len(got) > MaxClientText || !utf8.ValidString(got) {
				t.Fatalf("ClientText = %q (%d bytes), want %q", got, len(got), tc.want)
			}
		})
	}
}
