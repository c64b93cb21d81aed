package auditlog

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// EventAuditSpillCorrupt is written in place of a line of the spill that
// could not be trusted (docs/audit-events.md).
const EventAuditSpillCorrupt = "audit.spill_corrupt"

// errSpillFull is append's answer when an event would take the queue past
// its bound.
var errSpillFull = errors.New("audit spill is full")

// Files of the spill directory.
const (
	spillQueueFile      = "queue.jsonl"
	spillOffsetFile     = "offset"
	spillQuarantineFile = "quarantine.jsonl"
)

// Reasons of an audit.spill_corrupt event.
const (
	corruptUnreadable = "unreadable"  // not a spill line, or not of this queue
	corruptForged     = "bad_mac"     // its MAC does not verify
	corruptReplayed   = "replayed"    // a line number already read
	corruptMissing    = "missing"     // line numbers skipped
	corruptOffset     = "bad_offset"  // the offset file is unreadable or forged
	corruptLegacy     = "legacy_line" // an unreadable line of an older spill
)

// spillLine is one event of the queue: its number in the queue (from 1,
// consecutive), the event as JSON, and an HMAC over the queue's epoch, the
// number and the event.
type spillLine struct {
	N   uint64          `json:"n"`
	Ev  json.RawMessage `json:"e"`
	MAC string          `json:"m"`
}

// spillHeader is the queue file's first line: the epoch, random, new each
// time the queue is made or emptied, so that lines of an earlier queue
// cannot be put back into this one.
type spillHeader struct {
	Epoch string `json:"epoch"`
}

// spill is the writer's bounded queue on disk, in the node's data
// directory: events the memory queue had no room for, one line each, read
// back in the order they were appended. What the cluster has taken is
// marked by a byte offset kept in a file of its own; once everything is
// taken the queue is emptied. An event the cluster took just before the
// node crashed, before its offset was written, is replayed once more on the
// next start (at least once: the window is one batch).
//
// Each line carries its number and an HMAC (a key derived from the
// key-encryption key), and so does the offset: a line that is unreadable,
// forged, or out of sequence is moved to the quarantine file and an
// audit.spill_corrupt event written in its place, so one bad line never
// stalls the writer, and events injected or skipped by someone who can
// write the data directory but holds no key are reported.
//
// It is not safe for concurrent use: the writer holds its lock around
// every call.
type spill struct {
	dir      string
	maxBytes int64
	key      []byte
	f        *os.File
	size     int64 // bytes in the queue file
	off      int64 // bytes the cluster has taken (or the header's end)
	count    int   // lines after off
	epoch    string
	// next is the number of the next line appended; nextRead the one the
	// line at off should carry.
	next, nextRead uint64
	// opened are audit.spill_corrupt fields found on open (a forged
	// offset, an unreadable line of an older spill), written with the
	// first batch.
	opened []map[string]string
}

// openSpill opens (creating) the queue in dir, bounded to maxBytes, its
// lines authenticated with key. A torn last line (a crash while appending)
// is cut off: its event was never acknowledged to anyone, its caller having
// crashed with the node. A queue of an older version (lines without a MAC)
// is rewritten in this format.
func openSpill(dir string, maxBytes int64, key []byte) (*spill, error) {
	if len(key) < 16 {
		return nil, errors.New("audit spill: no key")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, spillQueueFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	s := &spill{dir: dir, maxBytes: maxBytes, key: key, f: f, next: 1, nextRead: 1}
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
	data = data[:whole]
	s.size = whole
	if whole == 0 {
		return s, nil
	}
	first := data[:bytes.IndexByte(data, '\n')+1]
	var h spillHeader
	if json.Unmarshal(first, &h) != nil || len(h.Epoch) != 32 {
		if err := s.convertLegacy(data); err != nil {
			s.f.Close()
			return nil, err
		}
		return s, nil
	}
	s.epoch, s.off = h.Epoch, int64(len(first))
	if err := s.readOffset(data); err != nil {
		s.f.Close()
		return nil, err
	}
	s.count = bytes.Count(data[s.off:], []byte{'\n'})
	// The next number follows the last line's, when that line is this
	// queue's (its MAC checks): a forged number (2^64-1 wraps to 0) would
	// otherwise have every honest event after it refused as replayed.
	s.next = s.nextRead + uint64(s.count)
	if last := bytes.LastIndexByte(data[:len(data)-1], '\n'); int64(last+1) >= s.off {
		var l spillLine
		if json.Unmarshal(data[last+1:], &l) == nil && l.N >= s.next && l.N < math.MaxUint64 &&
			hmac.Equal([]byte(l.MAC), []byte(s.mac(l.N, l.Ev))) {
			s.next = l.N + 1
		}
	}
	return s, nil
}

// readOffset reads and checks the offset file: an offset that is not its
// MAC's, or not on a line boundary, is not trusted, and the queue is read
// again from its start (events written twice, never skipped).
func (s *spill) readOffset(data []byte) error {
	b, err := os.ReadFile(filepath.Join(s.dir, spillOffsetFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit spill: %w", err)
	}
	parts := strings.Fields(string(b))
	ok := len(parts) == 3
	var off int64
	var n uint64
	if ok {
		off, err = strconv.ParseInt(parts[0], 10, 64)
		ok = err == nil
		n, err = strconv.ParseUint(parts[1], 10, 64)
		ok = ok && err == nil && n >= 1
	}
	ok = ok && hmac.Equal([]byte(parts[2]), []byte(s.offsetMAC(off, n)))
	ok = ok && off >= s.off && off <= int64(len(data)) && data[off-1] == '\n'
	if !ok {
		s.opened = append(s.opened, map[string]string{"reason": corruptOffset, "offset": strconv.FormatInt(s.off, 10)})
		return nil
	}
	s.off, s.nextRead = off, n
	return nil
}

// convertLegacy rewrites a queue of plain JSON lines (an older version's,
// with its plain offset) in this format; unreadable lines go to the
// quarantine file.
func (s *spill) convertLegacy(data []byte) error {
	off := int64(0)
	if b, err := os.ReadFile(filepath.Join(s.dir, spillOffsetFile)); err == nil {
		if o, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && o > 0 && o <= int64(len(data)) && data[o-1] == '\n' {
			off = o
		}
	}
	var evs []raftstore.AuditEventInput
	at := off
	for _, line := range bytes.SplitAfter(data[off:], []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var ev raftstore.AuditEventInput
		if err := json.Unmarshal(line, &ev); err != nil || ev.Type == "" {
			if err := s.quarantine(line); err != nil {
				return err
			}
			s.opened = append(s.opened, map[string]string{"reason": corruptLegacy, "offset": strconv.FormatInt(at, 10),
				"bytes": strconv.Itoa(len(line)), "quarantine": spillQuarantineFile})
		} else {
			evs = append(evs, ev)
		}
		at += int64(len(line))
	}
	return s.rewrite(evs)
}

func (s *spill) close() error { return s.f.Close() }

// mac is line n's HMAC over the epoch and the event's JSON.
func (s *spill) mac(n uint64, ev []byte) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "rampart audit spill v1\n%s\n%d\n", s.epoch, n)
	m.Write(ev)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *spill) offsetMAC(off int64, n uint64) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "rampart audit spill offset v1\n%s\n%d\n%d", s.epoch, off, n)
	return hex.EncodeToString(m.Sum(nil))
}

// encode is line n of ev.
func (s *spill) encode(n uint64, ev *raftstore.AuditEventInput) ([]byte, error) {
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("audit spill: encode: %w", err)
	}
	line, err := json.Marshal(spillLine{N: n, Ev: raw, MAC: s.mac(n, raw)})
	if err != nil {
		return nil, fmt.Errorf("audit spill: encode: %w", err)
	}
	return append(line, '\n'), nil
}

// header starts a new queue: a new epoch, and its line.
func (s *spill) header() ([]byte, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("audit spill: %w", err)
	}
	s.epoch = hex.EncodeToString(b[:])
	line, _ := json.Marshal(spillHeader{Epoch: s.epoch})
	return append(line, '\n'), nil
}

// append adds ev at the end, durably (fsync), unless that takes the queue
// past its bound and force is false.
func (s *spill) append(ev *raftstore.AuditEventInput, force bool) error {
	var head []byte
	if s.size == 0 {
		h, err := s.header()
		if err != nil {
			return err
		}
		head = h
	}
	line, err := s.encode(s.next, ev)
	if err != nil {
		return err
	}
	if !force && s.size+int64(len(head)+len(line)) > s.maxBytes {
		return errSpillFull
	}
	if _, err := s.f.WriteAt(append(head, line...), s.size); err != nil {
		return fmt.Errorf("audit spill: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit spill: sync: %w", err)
	}
	if head != nil {
		s.off, s.nextRead = int64(len(head)), s.next
	}
	s.size += int64(len(head) + len(line))
	s.count++
	s.next++
	return nil
}

// decode reads one line: its number and event, or why it is not trusted.
func (s *spill) decode(line []byte) (uint64, *raftstore.AuditEventInput, string) {
	var l spillLine
	if err := json.Unmarshal(line, &l); err != nil || len(l.Ev) == 0 {
		return 0, nil, corruptUnreadable
	}
	if !hmac.Equal([]byte(l.MAC), []byte(s.mac(l.N, l.Ev))) {
		return 0, nil, corruptForged
	}
	var ev raftstore.AuditEventInput
	if err := json.Unmarshal(l.Ev, &ev); err != nil {
		return 0, nil, corruptUnreadable
	}
	return l.N, &ev, ""
}

// spillRead is what peek read: the events (audit.spill_corrupt ones among
// them), the offset past them, how many lines that is, and the number the
// next line should carry.
type spillRead struct {
	events   []raftstore.AuditEventInput
	end      int64
	lines    int
	nextRead uint64
}

// peek reads up to n events from the front. A line that cannot be trusted
// is copied to the quarantine file and an audit.spill_corrupt event (at
// now) takes its place; a gap in the numbers is reported the same way, the
// line after it kept.
func (s *spill) peek(n int, now time.Time) (*spillRead, error) {
	out := &spillRead{end: s.off, nextRead: s.nextRead}
	corrupt := func(f map[string]string) {
		out.events = append(out.events, raftstore.AuditEventInput{Time: now, Type: EventAuditSpillCorrupt, Actor: "rampartd", Fields: f})
	}
	for _, f := range s.opened {
		corrupt(f)
	}
	r := bufio.NewReader(io.NewSectionReader(s.f, s.off, s.size-s.off))
	// bad counts the lines quarantined since the last good one: each may
	// have held one of the numbers a gap is missing.
	bad := uint64(0)
	for len(out.events) < n-1 {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit spill: read: %w", err)
		}
		at := out.end
		out.end += int64(len(line))
		out.lines++
		num, ev, why := s.decode(line)
		if why == "" && num < out.nextRead {
			why = corruptReplayed
		}
		if why != "" {
			if err := s.quarantine(line); err != nil {
				return nil, err
			}
			corrupt(map[string]string{"reason": why, "offset": strconv.FormatInt(at, 10), "bytes": strconv.Itoa(len(line)), "quarantine": spillQuarantineFile})
			bad++
			continue
		}
		if gap := num - out.nextRead; gap > bad {
			corrupt(map[string]string{"reason": corruptMissing, "offset": strconv.FormatInt(at, 10), "missing": strconv.FormatUint(gap-bad, 10)})
		}
		out.nextRead, bad = num+1, 0
		out.events = append(out.events, *ev)
	}
	return out, nil
}

// quarantine keeps a line that cannot be trusted, for an operator.
func (s *spill) quarantine(line []byte) error {
	f, err := os.OpenFile(filepath.Join(s.dir, spillQuarantineFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit spill: quarantine: %w", err)
	}
	if !bytes.HasSuffix(line, []byte{'\n'}) {
		line = append(line, '\n')
	}
	_, werr := f.Write(line)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("audit spill: quarantine: %w", err)
	}
	return nil
}

// commit marks what peek read as taken. When nothing is left the queue is
// emptied (its next lines start a new epoch).
func (s *spill) commit(r *spillRead) error {
	s.off, s.count, s.nextRead, s.opened = r.end, s.count-r.lines, r.nextRead, nil
	if s.off >= s.size {
		s.off, s.size, s.count, s.epoch, s.next, s.nextRead = 0, 0, 0, "", 1, 1
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("audit spill: empty: %w", err)
		}
		if err := os.Remove(filepath.Join(s.dir, spillOffsetFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit spill: %w", err)
		}
		return nil
	}
	return writeFileSync(filepath.Join(s.dir, spillOffsetFile),
		[]byte(fmt.Sprintf("%d %d %s\n", s.off, s.nextRead, s.offsetMAC(s.off, s.nextRead))))
}

// prepend puts evs before the events the queue holds (they are older: the
// memory queue's, when the node stops), ignoring the bound. The queue is
// written anew; lines that cannot be trusted go to the quarantine file and
// are reported (at now).
func (s *spill) prepend(evs []raftstore.AuditEventInput, now time.Time) error {
	if len(evs) == 0 {
		return nil
	}
	all := append([]raftstore.AuditEventInput(nil), evs...)
	for s.count > 0 || len(s.opened) > 0 {
		r, err := s.peek(maxBatch, now)
		if err != nil {
			return err
		}
		all = append(all, r.events...)
		if r.lines == 0 && len(s.opened) == 0 {
			break
		}
		s.off, s.count, s.nextRead, s.opened = r.end, s.count-r.lines, r.nextRead, nil
	}
	return s.rewrite(all)
}

// rewrite replaces the queue by evs under a new epoch.
func (s *spill) rewrite(evs []raftstore.AuditEventInput) error {
	head, err := s.header()
	if err != nil {
		return err
	}
	buf := bytes.NewBuffer(head)
	for i := range evs {
		line, err := s.encode(uint64(i+1), &evs[i])
		if err != nil {
			return err
		}
		buf.Write(line)
	}
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
	s.count, s.next, s.nextRead = len(evs), uint64(len(evs))+1, 1
	s.off, s.size = int64(len(head)), int64(buf.Len())
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
