package recording

import (
	"io"
)

// A recording holds whatever the recorded person's programs printed, and
// replaying it on an administrator's terminal hands those bytes to that
// terminal. Some sequences make a terminal act for the sender, not draw:
// OSC 52 writes the clipboard, OSC 8 plants hyperlinks, OSC 0/2 set the
// title (which some terminals report back), DCS requests such as DECRQSS,
// and CSI queries (DA, DSR such as CSI 6n, DECRQM, window reports) make the
// terminal answer into the administrator's input. TerminalSafe keeps what
// draws (text, colours, cursor movement, screen modes) and drops those.

// maxCSI bounds a control sequence that is held until its final byte; a
// longer one is dropped whole.
const maxCSI = 64

type termState uint8

const (
	tsGround    termState = iota
	tsEsc                 // after ESC
	tsCSI                 // inside ESC [ ... until a final byte
	tsString              // inside OSC, DCS, APC, PM or SOS: dropped until its end
	tsStringEsc           // ESC inside a string: '\\' ends it (ST)
	tsStringC2            // 0xC2 inside a string: 0x9C ends it (ST as U+009C)
	tsC2                  // after 0xC2, the lead byte of U+0080..U+00BF
)

// termSafeWriter filters a byte stream; sequences may span writes.
type termSafeWriter struct {
	w     io.Writer
	state termState
	// osc: the string being dropped is an OSC, which BEL also ends; DCS,
	// APC, PM and SOS end only at ST. Ending a string sooner than the
	// terminal would let its tail through as the string's content.
	osc bool
	seq []byte // the CSI being held
	out []byte
}

// TerminalSafe returns a writer that passes what w's terminal draws and
// drops what would make it act: operating system commands (OSC: clipboard,
// hyperlinks, titles), device control strings (DCS: DECRQSS and the like),
// APC, PM and SOS strings, C1 control characters, ESC Z, and CSI sequences
// that query the terminal or its window (DA, DSR, DECRQM, DECREQTPARM,
// window operations) or print (media copy). Its Write reports len(p) when w
// took everything it was given.
func TerminalSafe(w io.Writer) io.Writer { return &termSafeWriter{w: w} }

func (t *termSafeWriter) Write(p []byte) (int, error) {
	t.out = t.out[:0]
	for _, b := range p {
		t.step(b)
	}
	if len(t.out) == 0 {
		return len(p), nil
	}
	if _, err := t.w.Write(t.out); err != nil {
		return 0, err
	}
	if cap(t.out) > 64<<10 {
		t.out = nil
	}
	return len(p), nil
}

func (t *termSafeWriter) step(b byte) {
	switch t.state {
	case tsGround:
		switch {
		case b == 0x1b:
			t.state = tsEsc
		case b == 0xc2:
			t.state = tsC2
		default:
			t.out = append(t.out, b)
		}
	case tsC2:
		t.state = tsGround
		if b >= 0x80 && b <= 0x9f {
			// A C1 control (U+0080..U+009F): CSI, OSC, DCS and their kin in
			// eight-bit form. Never printable; dropped, and a string one
			// drops its string too.
			if b == 0x90 || b == 0x9d || b == 0x98 || b == 0x9e || b == 0x9f {
				t.state, t.osc = tsString, b == 0x9d
			}
			return
		}
		t.out = append(t.out, 0xc2)
		t.step(b)
	case tsEsc:
		switch b {
		case '[':
			t.state = tsCSI
			t.seq = append(t.seq[:0], 0x1b, '[')
		case ']', 'P', '_', '^', 'X':
			t.state, t.osc = tsString, b == ']'
		case 'Z': // DECID: the terminal answers with its identity
			t.state = tsGround
		case 0x1b:
			// ESC ESC: the first is dropped, the second starts again.
		default:
			t.state = tsGround
			if b < 0x20 || b > 0x7e {
				t.step(b) // not an escape sequence: the ESC is dropped
				return
			}
			t.out = append(t.out, 0x1b, b)
		}
	case tsCSI:
		t.seq = append(t.seq, b)
		switch {
		case b >= 0x40 && b <= 0x7e:
			t.state = tsGround
			if len(t.seq) <= maxCSI && csiAllowed(t.seq) {
				t.out = append(t.out, t.seq...)
			}
		case b == 0x1b:
			t.state = tsEsc // an unfinished sequence: dropped
		case b < 0x20 || b > 0x7e:
			// Not part of a CSI: the sequence is dropped, the byte kept.
			t.state = tsGround
			t.step(b)
		}
	case tsString:
		switch {
		case b == 0x07 && t.osc: // BEL ends an OSC
			t.state = tsGround
		case b == 0x1b:
			t.state = tsStringEsc
		case b == 0xc2:
			t.state = tsStringC2
		}
	case tsStringEsc:
		switch b {
		case '\\':
			t.state = tsGround
		case 0x1b:
		default:
			t.state = tsString
			t.step(b)
		}
	case tsStringC2:
		if b == 0x9c { // ST as U+009C
			t.state = tsGround
			return
		}
		t.state = tsString
		t.step(b)
	}
}

// csiAllowed reports whether a complete CSI sequence (ESC [ ... final)
// only draws.
func csiAllowed(seq []byte) bool {
	final := seq[len(seq)-1]
	var inter byte
	if len(seq) >= 4 {
		if c := seq[len(seq)-2]; c >= 0x20 && c <= 0x2f {
			inter = c
		}
	}
	switch {
	case final == 'c': // DA1, DA2, DA3
		return false
	case final == 'n': // DSR, including CSI 6n (cursor position report)
		return false
	case final == 't': // window operations, reports of size and title
		return false
	case final == 'x': // DECREQTPARM
		return false
	case final == 'i': // media copy (print the screen)
		return false
	case final == 'p' && inter == '$': // DECRQM
		return false
	case final == 'q' && inter == '$', final == 'w' && inter == '$', final == 'u' && inter == '$': // DEC requests
		return false
	}
	return true
}
