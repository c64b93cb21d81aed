package console

import (
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/rampart-ssh/rampart/gateway/recording"
)

// Line is one line of a recording's output with its ANSI sequences
// removed, and the time (seconds into the recording) it was complete.
type Line struct {
	T    float64 `json:"t"`
	Text string  `json:"x"`
}

// Text limits: what one session contributes to the index.
const (
	maxLineBytes  = 4 << 10
	maxTextBytes  = 4 << 20
	maxIndexLines = 100_000
)

// ExtractLines reads an asciicast v2 recording and returns its output as
// text lines with escape sequences removed, carriage returns and
// backspaces applied as a terminal would to the current line.
func ExtractLines(r io.Reader) ([]Line, error) {
	rd, err := recording.NewReader(r)
	if err != nil {
		return nil, err
	}
	var (
		out   []Line
		total int
		strip ansiStripper
		cur   lineBuf
	)
	full := func() bool { return len(out) >= maxIndexLines || total >= maxTextBytes }
	flush := func(t float64) {
		s := strings.TrimRight(cur.String(), " ")
		cur.reset()
		if strings.TrimSpace(s) == "" || full() {
			return
		}
		total += len(s)
		out = append(out, Line{T: t, Text: s})
	}
	// Once full, nothing more is kept: the rest of a long recording (a
	// gigabyte downloaded in a recorded session) is not even read.
	for !full() {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A recording cut short (a node died mid-session) is still
			// worth indexing up to the cut.
			break
		}
		if ev.Type != recording.EventOutput {
			continue
		}
		for _, r := range strip.feed(ev.Data) {
			switch r {
			case '\n':
				flush(ev.Time.Seconds())
			case '\r':
				cur.col = 0
			case '\b':
				if cur.col > 0 {
					cur.col--
				}
			case '\t':
				cur.put(' ')
			default:
				if r >= ' ' {
					cur.put(r)
				}
			}
		}
		cur.t = ev.Time.Seconds()
	}
	flush(cur.t)
	return out, nil
}

// lineBuf is the current line as a terminal holds it: typing after a
// carriage return overwrites.
type lineBuf struct {
	runes []rune
	col   int
	t     float64
}

func (l *lineBuf) put(r rune) {
	if l.col < len(l.runes) {
		l.runes[l.col] = r
	} else if len(l.runes) < maxLineBytes {
		l.runes = append(l.runes, r)
	} else {
		return
	}
	l.col++
}

func (l *lineBuf) String() string { return string(l.runes) }
func (l *lineBuf) reset()         { l.runes, l.col = l.runes[:0], 0 }

// ansiStripper drops escape sequences (CSI, OSC, DCS and the like, and
// two-byte ESC sequences) across event boundaries.
type ansiStripper struct {
	state int
}

const (
	stText = iota
	stEsc
	stCSI
	stString // OSC, DCS, SOS, PM, APC: until BEL or ST
	stStringEsc
)

func (a *ansiStripper) feed(s string) []rune {
	out := make([]rune, 0, len(s))
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		switch a.state {
		case stText:
			switch {
			case r == 0x1b:
				a.state = stEsc
			case r == 0x9b:
				a.state = stCSI
			case r == 0x9d || r == 0x90:
				a.state = stString
			default:
				out = append(out, r)
			}
		case stEsc:
			switch r {
			case '[':
				a.state = stCSI
			case ']', 'P', 'X', '^', '_':
				a.state = stString
			case '(', ')', '*', '+', '#', '%':
				// One more byte names the charset; drop it with the text
				// state's next rune: close enough for search.
				a.state = stText
			default:
				a.state = stText
			}
		case stCSI:
			if r >= 0x40 && r <= 0x7e {
				a.state = stText
			}
		case stString:
			switch r {
			case 0x07, 0x9c:
				a.state = stText
			case 0x1b:
				a.state = stStringEsc
			}
		case stStringEsc:
			a.state = stString
			if r == '\\' {
				a.state = stText
			}
		}
	}
	return out
}
