package recording

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
)

// EventType is the second field of an asciicast v2 event line.
type EventType string

// The event types Rampart writes.
const (
	EventOutput EventType = "o" // what the terminal showed
	EventInput  EventType = "i" // what the person typed (only with RecordInput)
	EventResize EventType = "r" // a window change, data "COLSxROWS"
)

// maxEventData bounds the raw bytes in one event line, so one huge write
// becomes several lines that readers with a line limit (ours, asciinema's)
// take without trouble, and the buffer grows in steps it can flush.
const maxEventData = 32 << 10

// stream is one byte stream (output or input) as it is turned into events.
// A multi-byte character split across writes is held back in carry until the
// write that completes it, so every event's data is whole UTF-8.
type stream struct {
	kind  EventType
	carry [utf8.UTFMax]byte
	n     int // bytes held in carry
}

// appendEventStart appends `[t, "k", "` — an event line up to its data.
func appendEventStart(dst []byte, t time.Duration, kind EventType) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendFloat(dst, t.Seconds(), 'f', 6, 64)
	dst = append(dst, ", \""...)
	dst = append(dst, kind...)
	return append(dst, "\", \""...)
}

// appendEventEnd closes an event line.
func appendEventEnd(dst []byte) []byte { return append(dst, "\"]\n"...) }

// appendStreamEvents appends p to dst as events of s at time t and returns
// dst. Bytes that may begin a character completed by the next write stay in
// s.carry; with atEOF they are written as U+FFFD instead.
func appendStreamEvents(dst []byte, s *stream, t time.Duration, p []byte, atEOF bool, scratch *[]byte) []byte {
	if s.n > 0 {
		joined := append(append((*scratch)[:0], s.carry[:s.n]...), p...)
		*scratch = joined
		p = joined
		s.n = 0
	}
	for len(p) > 0 {
		chunk := p[:min(len(p), maxEventData)]
		mark := len(dst)
		dst = appendEventStart(dst, t, s.kind)
		var used int
		dst, used = appendJSONText(dst, chunk, atEOF)
		if used == 0 {
			// Only the start of a character is left (the chunk is then the
			// whole rest of p, as a chunk of maxEventData always begins with
			// a complete character): keep it for the next write.
			dst = dst[:mark]
			s.n = copy(s.carry[:], p)
			break
		}
		dst = appendEventEnd(dst)
		p = p[used:]
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// Bytes of a word, for plainASCII.
const (
	eachByte = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainASCII reports whether all eight bytes of w go into a JSON string as
// they are: printable ASCII, neither a quote nor a backslash. (hasLess is the classic
// test for a byte below n, exact for n <= 128.)
func plainASCII(w uint64) bool {
	hasLess := func(x, n uint64) uint64 { return (x - n*eachByte) &^ x & highBits }
	return w&highBits|hasLess(w, 0x20)|hasLess(w^('"'*eachByte), 1)|hasLess(w^('\\'*eachByte), 1) == 0
}

// appendJSONText appends p as the inside of a JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD. Unless atEOF, it stops before a trailing incomplete character and
// reports how many bytes of p it used.
func appendJSONText(dst, p []byte, atEOF bool) ([]byte, int) {
	start := 0 // p[start:i] is waiting to be copied as it is
	i := 0
	for i < len(p) {
		// Text is mostly printable ASCII: pass it eight bytes at a time.
		for i+8 <= len(p) && plainASCII(binary.LittleEndian.Uint64(p[i:])) {
			i += 8
		}
		if i == len(p) {
			break
		}
		c := p[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, p[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		if !atEOF && !utf8.FullRune(p[i:]) {
			dst = append(dst, p[start:i]...)
			return dst, i
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, p[start:i]...)
			dst = append(dst, string(utf8.RuneError)...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, p[start:]...), len(p)
}
