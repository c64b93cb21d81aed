package auditexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rampart-ssh/rampart/raftstore"
)

// FileSink appends records as JSON lines to a file, fsynced after each batch,
// and rotates it by size: at MaxBytes the file becomes Path.1, Path.1 becomes
// Path.2, and so on; the oldest beyond MaxFiles is removed. It is meant for
// a file a log shipper tails, on a filesystem every node that may lead can
// reach, or on each node (then each holds what it exported while it led).
type FileSink struct {
	path     string
	maxBytes int64
	maxFiles int

	f    *os.File
	size int64
}

// NewFileSink returns a sink writing to path. A file left with a cut last
// line (a node killed mid-write) is cut back to its last whole line when it
// is opened, so every line stays one JSON object.
func NewFileSink(path string, maxBytes int64, maxFiles int) *FileSink {
	return &FileSink{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
}

func (s *FileSink) open() error {
	if s.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	// O_APPEND: a node that led before and still holds the file open
	// (it is closed at the end of each term, but a kill leaves no say)
	// cannot overwrite what the next leader wrote.
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	size, err := wholeLines(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("audit file %s: %w", s.path, err)
	}
	s.f, s.size = f, size
	return nil
}

// wholeLines cuts f after its last newline and returns its new size.
func wholeLines(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			keep := start + int64(i) + 1
			if keep == size {
				return size, nil
			}
			return keep, f.Truncate(keep)
		}
		end = start
	}
	return 0, f.Truncate(0)
}

// Send writes the batch and fsyncs it.
func (s *FileSink) Send(_ context.Context, batch []*raftstore.AuditEvent) error {
	if err := s.open(); err != nil {
		return err
	}
	var buf []byte
	for _, e := range batch {
		line := append(appendJSON(nil, e), '\n')
		if s.size+int64(len(buf)+len(line)) > s.maxBytes && s.size+int64(len(buf)) > 0 {
			if err := s.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := s.rotate(); err != nil {
				return err
			}
		}
		buf = append(buf, line...)
	}
	return s.write(buf)
}

func (s *FileSink) write(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := s.f.Write(buf)
	s.size += int64(n)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Reopen next time: the cut line, if any, goes then.
		s.f.Close()
		s.f = nil
		return fmt.Errorf("audit file %s: %w", s.path, err)
	}
	return nil
}

// rotate closes the file, shifts the rotated ones and starts a new one.
func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	s.f = nil
	name := func(i int) string { return s.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(s.maxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit file rotation: %w", err)
	}
	for i := s.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit file rotation: %w", err)
		}
	}
	if err := os.Rename(s.path, name(1)); err != nil {
		return fmt.Errorf("audit file rotation: %w", err)
	}
	return s.open()
}

// Close closes the file.
func (s *FileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
