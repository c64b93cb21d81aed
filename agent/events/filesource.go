package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Source reads sshd's log from a position and hands each line to emit, in
// order, until ctx ends or emit fails. A zero position (first start) means
// "from now on": the source first hands over a line with only the position
// it starts at, so that a restart before any login resumes there.
type Source interface {
	Run(ctx context.Context, from Position, emit func(Line) error) error
}

// maxLineLen bounds a line; the rest of a longer one is dropped.
const maxLineLen = 64 << 10

// FileSource follows a log file (auth.log, secure, or a file sshd writes
// with -E) by polling: it reads what was appended, follows a rotation
// (rename and a new file: it drains the old one first) and a truncation
// (copytruncate: it starts again at 0). A position names the file by inode,
// so after a restart it resumes in the right file, also in the rotated one
// if the rotation happened while the agent was stopped.
type FileSource struct {
	Path string
	// Poll is the interval between two looks at the file (250ms if zero).
	Poll   time.Duration
	Logger *slog.Logger
	// Now stamps traditional syslog times with a year (time.Now if nil).
	Now func() time.Time
}

// openLog is the file being read.
type openLog struct {
	f       *os.File
	inode   uint64
	offset  int64 // after the last complete line handed over
	partial []byte
	pending int64 // bytes read after offset (partial, and what long dropped)
	long    bool  // dropping the rest of an over-long line
}

// Run implements Source.
func (s *FileSource) Run(ctx context.Context, from Position, emit func(Line) error) error {
	poll := s.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	cur, err := s.resume(ctx, from, emit, poll)
	if err != nil || cur == nil {
		return err
	}
	defer func() { cur.f.Close() }()
	for {
		if err := s.drain(cur, emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
		fi, err := os.Stat(s.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Rotated away and not created again yet: keep the old one.
			continue
		case err != nil:
			s.Logger.Warn("login log", "path", s.Path, "err", err)
			continue
		}
		if id := fileID(fi); id != cur.inode {
			// Rotated: what was appended to the old file before the
			// rename is read first, then the new file from its start.
			if err := s.drain(cur, emit); err != nil {
				return err
			}
			if err := s.flushPartial(cur, emit); err != nil {
				return err
			}
			next, err := s.open(0)
			if err != nil {
				s.Logger.Warn("login log rotated; cannot open the new file yet", "path", s.Path, "err", err)
				continue
			}
			cur.f.Close()
			cur = next
			s.Logger.Info("login log rotated; reading the new file", "path", s.Path)
			continue
		}
		if fi.Size() < cur.offset {
			s.Logger.Info("login log truncated; reading it from the start", "path", s.Path)
			if _, err := cur.f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			cur.offset, cur.partial, cur.pending, cur.long = 0, nil, 0, false
		}
	}
}

// resume opens the log where from says, or at its end when from is not a
// position in this file. It waits for a log that does not exist yet.
func (s *FileSource) resume(ctx context.Context, from Position, emit func(Line) error, poll time.Duration) (*openLog, error) {
	waited := false
	for {
		_, err := os.Stat(s.Path)
		if err == nil {
			break
		}
		if !waited {
			s.Logger.Warn("login log does not exist (yet); waiting for it", "path", s.Path, "err", err)
			waited = true
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(poll):
		}
	}
	if from.Path != s.Path || from.Inode == 0 {
		// A log that appeared while the agent waited is new: all of it.
		start := int64(-1)
		if waited {
			start = 0
		}
		cur, err := s.open(start)
		if err != nil {
			return nil, err
		}
		if err := emit(Line{Pos: cur.pos(s.Path)}); err != nil {
			cur.f.Close()
			return nil, err
		}
		s.Logger.Info("reading the login log from now on", "path", s.Path, "offset", cur.offset)
		return cur, nil
	}
	cur, err := s.open(0)
	if err != nil {
		return nil, err
	}
	if cur.inode == from.Inode {
		if fi, err := cur.f.Stat(); err == nil && fi.Size() >= from.Offset {
			if _, err := cur.f.Seek(from.Offset, io.SeekStart); err != nil {
				cur.f.Close()
				return nil, err
			}
			cur.offset = from.Offset
		}
		s.Logger.Info("resuming the login log", "path", s.Path, "offset", cur.offset)
		return cur, nil
	}
	// The file was rotated while the agent was stopped: finish the old one
	// if it is still there (uncompressed), then read the new one whole.
	if old := findRotated(s.Path, from.Inode); old != "" {
		s.Logger.Info("resuming the rotated login log before the new one", "rotated", old, "offset", from.Offset)
		if err := s.readRest(old, from, emit); err != nil {
			cur.f.Close()
			return nil, err
		}
	} else {
		s.Logger.Warn("the login log was rotated while the agent was stopped and the old file is gone (compressed or deleted): logins logged at its end are not reported", "path", s.Path)
	}
	return cur, nil
}

// readRest hands over the lines of a rotated file after from.
func (s *FileSource) readRest(path string, from Position, emit func(Line) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(from.Offset, io.SeekStart); err != nil {
		return err
	}
	old := &openLog{f: f, inode: from.Inode, offset: from.Offset}
	if err := s.drain(old, emit); err != nil {
		return err
	}
	return s.flushPartial(old, emit)
}

// findRotated looks for the file with inode among path's rotated copies
// (path.1, path-20260510, ...), skipping compressed ones.
func findRotated(path string, inode uint64) string {
	var candidates []string
	for _, pat := range []string{path + ".*", path + "-*"} {
		m, _ := filepath.Glob(pat)
		candidates = append(candidates, m...)
	}
	for _, c := range candidates {
		if strings.HasSuffix(c, ".gz") || strings.HasSuffix(c, ".xz") || strings.HasSuffix(c, ".bz2") || strings.HasSuffix(c, ".zst") {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fileID(fi) == inode {
			return c
		}
	}
	return ""
}

// open opens the log at offset (-1: its end).
func (s *FileSource) open(offset int64) (*openLog, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("login log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("login log: %w", err)
	}
	if offset < 0 {
		offset = fi.Size()
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("login log: %w", err)
	}
	return &openLog{f: f, inode: fileID(fi), offset: offset}, nil
}

func (l *openLog) pos(path string) Position {
	return Position{Path: path, Inode: l.inode, Offset: l.offset}
}

// drain hands over every complete line up to the end of the file.
func (s *FileSource) drain(l *openLog, emit func(Line) error) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.f.Read(buf)
		if n > 0 {
			if err := s.split(l, buf[:n], emit); err != nil {
				return err
			}
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read login log: %w", err)
		}
	}
}

// split cuts data into lines; the unfinished end waits in l.partial.
func (s *FileSource) split(l *openLog, data []byte, emit func(Line) error) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.keep(data)
			return nil
		}
		l.keep(data[:i])
		// A position's offset is always a line's start.
		l.offset += l.pending + 1
		line := string(l.partial)
		l.partial, l.pending, l.long = l.partial[:0], 0, false
		if err := emit(s.line(line, l)); err != nil {
			return err
		}
		data = data[i+1:]
	}
	return nil
}

// keep adds the bytes of an unfinished line, up to maxLineLen of them.
func (l *openLog) keep(b []byte) {
	if !l.long {
		l.partial = append(l.partial, b...)
		if len(l.partial) > maxLineLen {
			l.partial, l.long = l.partial[:maxLineLen], true
		}
	}
	l.pending += int64(len(b))
}

// flushPartial hands over an unfinished last line of a file that will not
// grow any more (rotated away).
func (s *FileSource) flushPartial(l *openLog, emit func(Line) error) error {
	if l.pending == 0 {
		return nil
	}
	l.offset += l.pending
	line := string(l.partial)
	l.partial, l.pending, l.long = nil, 0, false
	return emit(s.line(line, l))
}

func (s *FileSource) line(raw string, l *openLog) Line {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	out := Line{Pos: l.pos(s.Path)}
	if msg, t, pid, ok := syslogLine(raw, now()); ok {
		out.Text, out.Time, out.PID = msg, t, pid
	}
	return out
}
