package recording

import (
	"bytes"
	"testing"
)

func TestTerminalSafe(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"ok/plain-text", "hello, wörld — ✓\r\n", "hello, wörld — ✓\r\n"},
		{"ok/colours-and-cursor", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[10;5H\x1b[?25l\x1b[?1049h", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[10;5H\x1b[?25l\x1b[?1049h"},
		{"ok/charset-and-keypad", "\x1b(B\x1b=\x1b>\x1b7\x1b8", "\x1b(B\x1b=\x1b>\x1b7\x1b8"},
		{"ok/text-after-c2-letter", "\u00a0\u00e9", "\u00a0\u00e9"},
		{"fail/osc52-clipboard-bel", "a\x1b]52;c;ZWNobyBwd25lZA==\x07b", "ab"},
		{"fail/osc52-clipboard-st", "a\x1b]52;c;ZWNobyBwd25lZA==\x1b\\b", "ab"},
		{"fail/osc8-hyperlink", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"fail/osc-title", "\x1b]0;owned\x07x", "x"},
		{"fail/decrqss", "\x1bP$qm\x1b\\x", "x"},
		{"fail/dcs-not-ended-by-bel", "\x1bP$q\x07m\x1b\\x", "x"},
		{"fail/dcs-not-ended-by-lookalike", "\x1bP$q✜m\x1b\\x", "x"},
		{"fail/apc-pm-sos", "\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\x", "x"},
		{"fail/da1-da2-da3", "\x1b[c\x1b[0c\x1b[>c\x1b[=cx", "x"},
		{"fail/dsr-cursor-position", "\x1b[6n\x1b[5n\x1b[?6nx", "x"},
		{"fail/decrqm", "\x1b[?2026$px", "x"},
		{"fail/window-report", "\x1b[21t\x1b[18t\x1b[8;100;100tx", "x"},
		{"fail/decid", "\x1bZx", "x"},
		{"fail/media-copy", "\x1b[5ix", "x"},
		{"fail/c1-csi-osc-dcs", "\u009b6n\u009d52;c;QQ==\u009cx\u0090$qm\u009cy", "6nxy"},
		{"fail/esc-before-c1", "\x1b\u009d52;c;QQ==\x07", ""},
		{"fail/csi-broken-by-control", "\x1b[6\nn", "\nn"},
		{"fail/overlong-csi", "\x1b[" + string(bytes.Repeat([]byte("1;"), 40)) + "mx", "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and byte by byte (a sequence may span events).
			for _, chunk := range []int{len(tc.in), 1} {
				var out bytes.Buffer
				w := TerminalSafe(&out)
				in := []byte(tc.in)
				for len(in) > 0 {
					n := min(chunk, len(in))
					if m, err := w.Write(in[:n]); err != nil || m != n {
						t.Fatalf("Write = %d, %v", m, err)
					}
					in = in[n:]
				}
				if out.String() != tc.want {
					t.Fatalf("chunks of %d: got %q, want %q", chunk, out.String(), tc.want)
				}
			}
		})
	}
}
