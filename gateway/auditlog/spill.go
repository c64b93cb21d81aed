package auditlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rampart-ssh/rampart/raftstore"
)

// errSpillFull is append's answer when an event would take the queue past
// its bound.
var errSpillFull = errors.New("audit spill is full")

// Files of the spill directory.
const (
	spillQueueFile  = "queue.jsonl"
	spillOffsetFile = "offset"
)

// spill is the writer's bounded queue on disk, in the node's data
// directory: events the memory queue had no room for, one JSON line each,
// read back in the order they were appended. What the cluster has taken is
// marked by a byte offset kept in a file of its own; once everything is
// taken the queue is emptied. An event the cluster took just before the
// node crashed, before its offset was written, is replayed once more on the
// next start (at least once: the window is one batch).
//
// It is not safe for concurrent use: the writer holds its lock around
// every call.
type spill struct {
	dir      string
	maxBytes int64
	f        *os.File
	size     int64 // bytes in the queue file
	off      int64 // bytes the cluster has taken
	count    int   // events after off
}

// openSpill opens (creating) the queue in dir, bounded to maxBytes. A torn
// last line (a crash while appending) is cut off: its event was never
// acknowledged to anyone, its caller having crashed with the node.
func openSpill(dir string, maxBytes int64) (*spill, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, spillQueueFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	s := &spill{dir: dir, maxBytes: maxBytes, f: f}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit spill: read %s: %w", spillQueueFile, err)
	}
	whole := int64(bytes.LastIndexByte(data, '\n') + 1)
	if whole != int64(len(data)) {
		if err := f.Truncate(whole); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit spill: cut a torn line: %w", err)
		}
	}
	s.size = whole
	if b, err := os.ReadFile(filepath.Join(dir, spillOffsetFile)); err == nil {
		if off, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && off >= 0 && off <= s.size {
			s.off = off
		}
	}
	s.count = bytes.Count(data[s.off:whole], []byte{'\n'})
	return s, nil
}

func (s *spill) close() error { return s.f.Close() }

// append adds ev at the end, durably (fsync), unless that takes the queue
// past its bound and force is false.
func (s *spill) append(ev *raftstore.AuditEventInput, force bool) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit spill: encode: %w", err)
	}
	line = append(line, '\n')
	if !force && s.size+int64(len(line)) > s.maxBytes {
		return errSpillFull
	}
	if _, err := s.f.WriteAt(line, s.size); err != nil {
		return fmt.Errorf("audit spill: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit spill: sync: %w", err)
	}
	s.size += int64(len(line))
	s.count++
	return nil
}

// peek reads up to n events from the front, and the offset past them.
func (s *spill) peek(n int) ([]raftstore.AuditEventInput, int64, error) {
	r := bufio.NewReader(io.NewSectionReader(s.f, s.off, s.size-s.off))
	var out []raftstore.AuditEventInput
	end := s.off
	for len(out) < n {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("audit spill: read: %w", err)
		}
		var ev raftstore.AuditEventInput
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, 0, fmt.Errorf("audit spill: event at byte %d: %w", end, err)
		}
		out = append(out, ev)
		end += int64(len(line))
	}
	return out, end, nil
}

// commit marks the n events before end as taken. When nothing is left the
// queue is emptied.
func (s *spill) commit(end int64, n int) error {
	s.off, s.count = end, s.count-n
	if s.off >= s.size {
		s.off, s.size, s.count = 0, 0, 0
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("audit spill: empty: %w", err)
		}
		if err := os.Remove(filepath.Join(s.dir, spillOffsetFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit spill: %w", err)
		}
		return nil
	}
	return writeFileSync(filepath.Join(s.dir, spillOffsetFile), []byte(strconv.FormatInt(s.off, 10)))
}

// prepend puts evs before the events the queue holds (they are older: the
// memory queue's, when the node stops), ignoring the bound.
func (s *spill) prepend(evs []raftstore.AuditEventInput) error {
	if len(evs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for i := range evs {
		line, err := json.Marshal(&evs[i])
		if err != nil {
			return fmt.Errorf("audit spill: encode: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	rest := make([]byte, s.size-s.off)
	if _, err := s.f.ReadAt(rest, s.off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("audit spill: read: %w", err)
	}
	buf.Write(rest)
	// The offset goes first: a crash before the rename replays the old
	// queue from its start (events taken twice), never skips one.
	if err := os.Remove(filepath.Join(s.dir, spillOffsetFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit spill: %w", err)
	}
	path := filepath.Join(s.dir, spillQueueFile)
	if err := writeFileSync(path, buf.Bytes()); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	s.f.Close()
	s.f = f
	s.count += len(evs)
	s.off, s.size = 0, int64(buf.Len())
	return nil
}

// writeFileSync replaces path with data, durably: a temporary file synced
// and renamed over it.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("audit spill: write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit spill: sync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	return nil
}
