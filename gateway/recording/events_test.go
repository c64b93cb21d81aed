package recording

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// appendJSONTextByByte is appendJSONText without the eight-byte fast path:
// the reference the fast path must agree with.
func appendJSONTextByByte(dst, p []byte, atEOF bool) ([]byte, int) {
	start, i := 0, 0
	for i < len(p) {
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
			return append(dst, p[start:i]...), i
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

// TestJSONTextFastPath: the eight-byte path encodes exactly as byte by byte,
// for every byte value at every offset of a word and for random mixes of
// text, escapes and broken UTF-8, and the result is the JSON string of the
// input (invalid UTF-8 as U+FFFD).
func TestJSONTextFastPath(t *testing.T) {
	var inputs [][]byte
	base := []byte(strings.Repeat("plain text ", 3))
	for c := range 256 {
		for off := range 9 {
			in := bytes.Clone(base)
			in[off] = byte(c)
			inputs = append(inputs, in)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"abcdefgh", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "é", "€", "😀", "\xff", "\xe2\x82", " "}
	for range 2000 {
		var b []byte
		for range rng.IntN(40) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		for _, atEOF := range []bool{false, true} {
			got, gotN := appendJSONText(nil, in, atEOF)
			want, wantN := appendJSONTextByByte(nil, in, atEOF)
			if !bytes.Equal(got, want) || gotN != wantN {
				t.Fatalf("%q (atEOF %v): got %q, %d; byte by byte %q, %d", in, atEOF, got, gotN, want, wantN)
			}
			if !atEOF {
				continue
			}
			var s string
			if err := json.Unmarshal(append(append([]byte{'"'}, got...), '"'), &s); err != nil {
				t.Fatalf("%q: %q is not a JSON string: %v", in, got, err)
			}
			if want := string([]rune(string(in))); s != want { // each invalid byte a U+FFFD
				t.Fatalf("%q: decodes to %q, want %q", in, s, want)
			}
		}
	}
}

// BenchmarkJSONText: encoding a terminal's output, mostly printable ASCII.
func BenchmarkJSONText(b *testing.B) {
	line := strings.Repeat("2026-12-07T19:08:32Z web-1 nginx: GET /index.html 200\t", 1) + "\r\n"
	p := []byte(strings.Repeat(line, 32<<10/len(line)))
	b.SetBytes(int64(len(p)))
	dst := make([]byte, 0, 2*len(p))
	for b.Loop() {
		dst, _ = appendJSONText(dst[:0], p, false)
	}
}

// BenchmarkRecorderOutput: a bulk transfer's output, 32 KiB a write, into a
// file (encoding, buffering, the flusher's write and digest).
func BenchmarkRecorderOutput(b *testing.B) {
	r, err := New(Config{Dir: b.TempDir(), SessionID: "s-bench"})
	if err != nil {
		b.Fatal(err)
	}
	p := []byte(strings.Repeat(strings.Repeat("r", 63)+"\n", 32<<10/64))
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Output(p); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.Close(); err != nil {
		b.Fatal(err)
	}
}

// TestBufferSizes: typing keeps a small buffer (an interactive session
// must not hold a bulk buffer between flushes), bulk output takes a pooled
// one, and nothing is lost either way.
func TestBufferSizes(t *testing.T) {
	f := &stallFile{gate: make(chan struct{})}
	close(f.gate)
	open := func(string, int, os.FileMode) (file, error) { return f, nil }
	r, err := newRecorder(Config{Dir: t.TempDir(), SessionID: "s-1", Now: newClock().now, FlushInterval: time.Hour}, open)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Output([]byte("l")); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	small := cap(r.buf)
	r.mu.Unlock()
	if small > keepCap {
		t.Errorf("one typed byte: buffer of %d bytes, want at most %d", small, keepCap)
	}
	if err := r.Output(bytes.Repeat([]byte("x"), 20<<10)); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	bulk := cap(r.buf)
	r.mu.Unlock()
	if bulk < 20<<10 {
		t.Errorf("20 KiB of output: buffer of %d bytes", bulk)
	}
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(f.data.String(), "x"); got != 20<<10 {
		t.Errorf("file holds %d of the 20 KiB", got)
	}
}
