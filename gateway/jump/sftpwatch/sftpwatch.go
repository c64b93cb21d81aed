// Package sftpwatch reads the SFTP protocol (version 3, draft-ietf-secsh-
// filexfer-02, as OpenSSH speaks it) passively from the two byte streams of
// an sftp subsystem channel and reports the file operations in it: opens,
// reads and writes with their byte counts, removals and renames, with
// paths. It never changes or holds back a byte. An operation is reported
// once the server has answered it with success, and a channel's events are
// rate-limited: what passes the limit is counted in one sftp.suppressed
// event at the channel's end.
//
// github.com/pkg/sftp keeps its packet decoding unexported (and under
// internal/), so this is a small decoder of the few packets it needs.
package sftpwatch

import (
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Audit event types a Watcher reports.
const (
	EventSFTPOpen   = "sftp.open"   // path, flags
	EventSFTPRead   = "sftp.read"   // path, bytes (when a handle read any, at its close)
	EventSFTPWrite  = "sftp.write"  // path, bytes (when a handle wrote any, at its close)
	EventSFTPRemove = "sftp.remove" // path
	EventSFTPRename = "sftp.rename" // path, new_path
	EventSFTPMkdir  = "sftp.mkdir"  // path
	EventSFTPRmdir  = "sftp.rmdir"  // path
	// EventSFTPEnd is the channel's totals: bytes_read, bytes_written.
	EventSFTPEnd = "sftp.end"
	// EventSFTPSuppressed is reported at the channel's end when the rate
	// limit held events back: count (how many), types (each type and its
	// count, "sftp.mkdir:9800,sftp.open:12"), and untracked (requests
	// not followed because too many awaited their answers; 0 mostly).
	EventSFTPSuppressed = "sftp.suppressed"
)

// Rate limit of a channel's events: a burst of eventBurst, then
// eventsPerSecond. sftp.end and sftp.suppressed are never held back.
const (
	eventBurst      = 200
	eventsPerSecond = 20
)

// maxPending bounds the requests awaiting their answers that the watcher
// follows, and maxHandles the open handles whose bytes it counts. OpenSSH's
// sftp client keeps 64 requests in flight; a client that sends more without
// reading the answers gets the rest untracked (counted in sftp.suppressed).
const (
	maxPending = 4096
	maxHandles = 1024
)

// Packet types (draft-ietf-secsh-filexfer-02 section 3).
const (
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpRename   = 18
	fxpStatus   = 101
	fxpHandle   = 102
	fxpData     = 103
	fxpExtended = 200
)

// maxPacket bounds a packet the watcher will buffer; OpenSSH's sftp-server
// refuses anything over 256 KiB. Past it the watcher stops reading the
// stream (the channel itself goes on).
const maxPacket = 256<<10 + 1024

// maxPath bounds a path in an event.
const maxPath = 1024

// Emit receives one event: its type and key-value pairs.
type Emit func(typ string, kv ...string)

// file is an open handle.
type file struct {
	path          string
	read, written int64
}

// request is a request awaiting the server's answer.
type request struct {
	typ           byte
	path, newPath string
	flags         uint32
	handle        string // READ, WRITE
	n             int64  // WRITE: bytes
}

// Watcher follows one sftp channel. Client and Server are fed the bytes
// each side sent, in order; they may be called from different goroutines.
type Watcher struct {
	emit Emit
	now  func() time.Time

	mu        sync.Mutex
	in, out   stream
	pending   map[uint32]*request // request id → the request awaiting its answer
	handles   map[string]*file
	totalR    int64
	totalW    int64
	disabled  bool
	tokens    float64
	last      time.Time
	held      map[string]int // events held back by the rate limit, by type
	untracked int
}

type stream struct{ buf []byte }

// New returns a watcher that reports through emit.
func New(emit Emit) *Watcher { return newWatcher(emit, time.Now) }

func newWatcher(emit Emit, now func() time.Time) *Watcher {
	return &Watcher{emit: emit, now: now, pending: map[uint32]*request{}, handles: map[string]*file{},
		tokens: eventBurst, last: now(), held: map[string]int{}}
}

// report emits one event unless the channel passed its rate limit (mu
// held).
func (w *Watcher) report(typ string, kv ...string) {
	now := w.now()
	w.tokens = min(eventBurst, w.tokens+now.Sub(w.last).Seconds()*eventsPerSecond)
	w.last = now
	if w.tokens < 1 {
		w.held[typ]++
		return
	}
	w.tokens--
	w.emit(typ, kv...)
}

// follow records a request until its answer (mu held).
func (w *Watcher) follow(id uint32, r *request) {
	if len(w.pending) >= maxPending {
		w.untracked++
		return
	}
	w.pending[id] = r
}

// Client takes bytes the person's client sent.
func (w *Watcher) Client(p []byte) { w.feed(&w.in, p, w.clientPacket) }

// Server takes bytes the target's sftp-server sent.
func (w *Watcher) Server(p []byte) { w.feed(&w.out, p, w.serverPacket) }

func (w *Watcher) feed(s *stream, p []byte, handle func(typ byte, body []byte)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.disabled {
		return
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 5 {
		n := binary.BigEndian.Uint32(s.buf)
		if n == 0 || n > maxPacket {
			w.disabled, s.buf = true, nil
			return
		}
		if uint32(len(s.buf)-4) < n {
			return
		}
		handle(s.buf[4], s.buf[5:4+n])
		s.buf = s.buf[4+n:]
	}
	if len(s.buf) == 0 {
		s.buf = nil // let a large packet's buffer go
	}
}

// reader decodes SFTP's big-endian fields.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str() string {
	n := r.u32()
	if !r.ok || uint32(len(r.b)) < n {
		r.ok = false
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// clientPacket handles a request (mu held). Nothing is reported before
// the server answers it.
func (w *Watcher) clientPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	switch typ {
	case fxpOpen:
		id, path, flags := r.u32(), r.str(), r.u32()
		if r.ok {
			w.follow(id, &request{typ: typ, path: path, flags: flags})
		}
	case fxpRead:
		id, h := r.u32(), r.str()
		if r.ok && w.handles[h] != nil {
			w.follow(id, &request{typ: typ, handle: h})
		}
	case fxpWrite:
		id, h, _, data := r.u32(), r.str(), r.u64(), r.str()
		if r.ok && w.handles[h] != nil {
			w.follow(id, &request{typ: typ, handle: h, n: int64(len(data))})
		}
	case fxpClose:
		// Reported at its answer: the writes before it are answered first.
		id, h := r.u32(), r.str()
		if r.ok && w.handles[h] != nil {
			w.follow(id, &request{typ: typ, handle: h})
		}
	case fxpRemove, fxpMkdir, fxpRmdir:
		id, path := r.u32(), r.str()
		if r.ok {
			w.follow(id, &request{typ: typ, path: path})
		}
	case fxpRename:
		id, from, to := r.u32(), r.str(), r.str()
		if r.ok {
			w.follow(id, &request{typ: typ, path: from, newPath: to})
		}
	case fxpExtended:
		id, name := r.u32(), r.str()
		if r.ok && name == "posix-rename@openssh.com" {
			from, to := r.str(), r.str()
			if r.ok {
				w.follow(id, &request{typ: fxpRename, path: from, newPath: to})
			}
		}
	}
}

// serverPacket handles a reply (mu held): the request it answers is
// reported if it succeeded.
func (w *Watcher) serverPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	id := r.u32()
	if !r.ok {
		return
	}
	req := w.pending[id]
	if req == nil {
		return
	}
	delete(w.pending, id)
	switch typ {
	case fxpHandle:
		h := r.str()
		if !r.ok || req.typ != fxpOpen {
			return
		}
		w.report(EventSFTPOpen, "path", clean(req.path), "flags", openFlags(req.flags))
		if len(w.handles) < maxHandles {
			w.handles[h] = &file{path: req.path}
		}
	case fxpData:
		data := r.str()
		if f := w.handles[req.handle]; r.ok && req.typ == fxpRead && f != nil {
			f.read += int64(len(data))
			w.totalR += int64(len(data))
		}
	case fxpStatus:
		if f := w.handles[req.handle]; req.typ == fxpClose && f != nil {
			w.closeFile(f) // closed or not, the handle is done with
			delete(w.handles, req.handle)
			return
		}
		if code := r.u32(); !r.ok || code != 0 { // SSH_FX_OK
			return
		}
		switch req.typ {
		case fxpWrite:
			if f := w.handles[req.handle]; f != nil {
				f.written += req.n
				w.totalW += req.n
			}
		case fxpRemove, fxpMkdir, fxpRmdir:
			w.report(map[byte]string{fxpRemove: EventSFTPRemove, fxpMkdir: EventSFTPMkdir, fxpRmdir: EventSFTPRmdir}[req.typ], "path", clean(req.path))
		case fxpRename:
			w.report(EventSFTPRename, "path", clean(req.path), "new_path", clean(req.newPath))
		}
	}
}

// closeFile reports what one handle read and wrote (mu held).
func (w *Watcher) closeFile(f *file) {
	if f.read > 0 {
		w.report(EventSFTPRead, "path", clean(f.path), "bytes", strconv.FormatInt(f.read, 10))
	}
	if f.written > 0 {
		w.report(EventSFTPWrite, "path", clean(f.path), "bytes", strconv.FormatInt(f.written, 10))
	}
}

// End reports the handles still open, the channel's totals and what the
// rate limit held back.
func (w *Watcher) End() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.handles {
		w.closeFile(f)
	}
	w.handles = map[string]*file{}
	w.pending = map[uint32]*request{}
	w.emit(EventSFTPEnd, "bytes_read", strconv.FormatInt(w.totalR, 10), "bytes_written", strconv.FormatInt(w.totalW, 10))
	if len(w.held) == 0 && w.untracked == 0 {
		return
	}
	count := 0
	var types []string
	for _, typ := range slices.Sorted(maps.Keys(w.held)) {
		count += w.held[typ]
		types = append(types, typ+":"+strconv.Itoa(w.held[typ]))
	}
	w.emit(EventSFTPSuppressed, "count", strconv.Itoa(count), "types", strings.Join(types, ","), "untracked", strconv.Itoa(w.untracked))
}

// openFlags names SSH_FXF_* flags.
func openFlags(f uint32) string {
	var out []string
	for _, b := range []struct {
		bit  uint32
		name string
	}{{1, "read"}, {2, "write"}, {4, "append"}, {8, "create"}, {16, "truncate"}, {32, "exclusive"}} {
		if f&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return strings.Join(out, ",")
}

// clean bounds a path and replaces what is not printable, so a client's
// path cannot forge lines in a log.
func clean(p string) string {
	if len(p) > maxPath {
		p = p[:maxPath]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(p, "?"))
}
