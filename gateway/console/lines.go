package console

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// RecordingLines are the output lines of one of a session's later
// recordings ("<id>-2", ...: a second channel's).
type RecordingLines struct {
	Name  string
	Lines []Line
}

// maxStoredBytes bounds what one session's lines take on disk, counted as
// written (escaped): past it the rest is indexed but not shown.
const maxStoredBytes = 8 << 20

// lineStore keeps each session's lines and commands beside the index, one
// record a line, so a hit is located by reading them one at a time (never
// the whole session into memory). dir "" keeps them in memory.
type lineStore struct {
	dir string
	mu  sync.Mutex
	mem map[string][]byte
}

func newLineStore(dir string) lineStore { return lineStore{dir: dir, mem: map[string][]byte{}} }

func (s *lineStore) path(session string) string {
	sum := sha256.Sum256([]byte(session))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16])+".lines")
}

// encode writes d's records: "o\t<t>\t<recording>\t<text>" for output,
// "c\t<text>" for a command or path, text and recording Go-quoted, until
// maxStoredBytes.
func encode(d Doc) []byte {
	var b bytes.Buffer
	add := func(rec []byte) bool {
		if b.Len()+len(rec) > maxStoredBytes {
			return false
		}
		b.Write(rec)
		return true
	}
	var rec []byte
	output := func(name string, lines []Line) bool {
		for _, l := range lines {
			rec = append(rec[:0], "o\t"...)
			rec = strconv.AppendFloat(rec, l.T, 'f', -1, 64)
			rec = append(rec, '\t')
			rec = strconv.AppendQuote(rec, name)
			rec = append(rec, '\t')
			rec = strconv.AppendQuote(rec, l.Text)
			rec = append(rec, '\n')
			if !add(rec) {
				return false
			}
		}
		return true
	}
	if output("", d.Lines) {
		for _, r := range d.Later {
			if !output(r.Name, r.Lines) {
				break
			}
		}
	}
	for _, c := range d.Commands {
		if len(c) > maxLineBytes {
			c = strings.ToValidUTF8(c[:maxLineBytes], "")
		}
		rec = strconv.AppendQuote(append(rec[:0], "c\t"...), c)
		rec = append(rec, '\n')
		if !add(rec) {
			break
		}
	}
	return b.Bytes()
}

func (s *lineStore) put(d Doc) error {
	data := encode(d)
	if s.dir == "" {
		s.mu.Lock()
		s.mem[d.Session] = data
		s.mu.Unlock()
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("search index lines: %w", err)
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("search index lines: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(d.Session))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("search index lines of %s: %w", d.Session, err)
	}
	return nil
}

func (s *lineStore) remove(session string) error {
	if s.dir == "" {
		s.mu.Lock()
		delete(s.mem, session)
		s.mu.Unlock()
		return nil
	}
	if err := os.Remove(s.path(session)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("search index lines of %s: %w", session, err)
	}
	return nil
}

// scan calls fn with each record of session, in order, until fn returns
// false. recording is "" for the session's first recording.
func (s *lineStore) scan(session string, fn func(l Line, recording string, isCmd bool) bool) error {
	var r io.Reader
	if s.dir == "" {
		s.mu.Lock()
		data := s.mem[session]
		s.mu.Unlock()
		r = bytes.NewReader(data)
	} else {
		f, err := os.Open(s.path(session))
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	// A line is at most maxLineBytes runes, each at most 10 bytes quoted.
	sc.Buffer(make([]byte, 0, 64<<10), 10*maxLineBytes*4+256)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), "\t")
		var l Line
		var rec string
		var err error
		switch kind {
		case "o":
			var ts, name string
			ts, rest, _ = strings.Cut(rest, "\t")
			name, rest, _ = strings.Cut(rest, "\t")
			if l.T, err = strconv.ParseFloat(ts, 64); err == nil {
				if rec, err = strconv.Unquote(name); err == nil {
					l.Text, err = strconv.Unquote(rest)
				}
			}
		case "c":
			l.Text, err = strconv.Unquote(rest)
		default:
			continue
		}
		if err != nil {
			continue
		}
		if !fn(l, rec, kind == "c") {
			return nil
		}
	}
	return sc.Err()
}

// commands returns the commands and paths a session was indexed with.
func (x *Index) commands(session string) []string {
	var out []string
	_ = x.lines.scan(session, func(l Line, _ string, isCmd bool) bool {
		if isCmd {
			out = append(out, l.Text)
		}
		return true
	})
	return out
}
