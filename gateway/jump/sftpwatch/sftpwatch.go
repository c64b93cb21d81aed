// Package sftpwatch reads the SFTP protocol (version 3, draft-ietf-secsh-
// filexfer-02, as OpenSSH speaks it) passively from the two byte streams of
// an sftp subsystem channel and reports the file operations in it: opens,
// reads and writes with their byte counts, removals and renames, with
// paths. It never changes or holds back a byte.
//
// github.com/pkg/sftp keeps its packet decoding unexported (and under
// internal/), so this is a small decoder of the few packets it needs.
package sftpwatch

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
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

// Watcher follows one sftp channel. Client and Server are fed the bytes
// each side sent, in order; they may be called from different goroutines.
type Watcher struct {
	emit Emit

	mu       sync.Mutex
	in, out  stream
	opens    map[uint32]string // request id → path of an OPEN awaiting its HANDLE
	reads    map[uint32]string // request id → handle of a READ awaiting its DATA
	handles  map[string]*file
	totalR   int64
	totalW   int64
	disabled bool
}

type stream struct{ buf []byte }

// New returns a watcher that reports through emit.
func New(emit Emit) *Watcher {
	return &Watcher{emit: emit, opens: map[uint32]string{}, reads: map[uint32]string{}, handles: map[string]*file{}}
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

// clientPacket handles a request (mu held).
func (w *Watcher) clientPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	switch typ {
	case fxpOpen:
		id, path, flags := r.u32(), r.str(), r.u32()
		if r.ok {
			w.opens[id] = path
			w.emit(EventSFTPOpen, "path", clean(path), "flags", openFlags(flags))
		}
	case fxpRead:
		id, h := r.u32(), r.str()
		if r.ok {
			w.reads[id] = h
		}
	case fxpWrite:
		_, h, _, data := r.u32(), r.str(), r.u64(), r.str()
		if f := w.handles[h]; r.ok && f != nil {
			f.written += int64(len(data))
			w.totalW += int64(len(data))
		}
	case fxpClose:
		_, h := r.u32(), r.str()
		if f := w.handles[h]; r.ok && f != nil {
			w.closeFile(f)
			delete(w.handles, h)
		}
	case fxpRemove, fxpMkdir, fxpRmdir:
		_, path := r.u32(), r.str()
		if r.ok {
			w.emit(map[byte]string{fxpRemove: EventSFTPRemove, fxpMkdir: EventSFTPMkdir, fxpRmdir: EventSFTPRmdir}[typ], "path", clean(path))
		}
	case fxpRename:
		_, from, to := r.u32(), r.str(), r.str()
		if r.ok {
			w.emit(EventSFTPRename, "path", clean(from), "new_path", clean(to))
		}
	case fxpExtended:
		_, name := r.u32(), r.str()
		if r.ok && name == "posix-rename@openssh.com" {
			from, to := r.str(), r.str()
			if r.ok {
				w.emit(EventSFTPRename, "path", clean(from), "new_path", clean(to))
			}
		}
	}
}

// serverPacket handles a reply (mu held).
func (w *Watcher) serverPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	id := r.u32()
	if !r.ok {
		return
	}
	switch typ {
	case fxpHandle:
		h := r.str()
		if path, ok := w.opens[id]; ok && r.ok {
			w.handles[h] = &file{path: path}
		}
		delete(w.opens, id)
	case fxpData:
		data := r.str()
		if f := w.handles[w.reads[id]]; r.ok && f != nil {
			f.read += int64(len(data))
			w.totalR += int64(len(data))
		}
		delete(w.reads, id)
	case fxpStatus:
		delete(w.opens, id)
		delete(w.reads, id)
	}
}

// closeFile reports what one handle read and wrote (mu held).
func (w *Watcher) closeFile(f *file) {
	if f.read > 0 {
		w.emit(EventSFTPRead, "path", clean(f.path), "bytes", strconv.FormatInt(f.read, 10))
	}
	if f.written > 0 {
		w.emit(EventSFTPWrite, "path", clean(f.path), "bytes", strconv.FormatInt(f.written, 10))
	}
}

// End reports the handles still open and the channel's totals.
func (w *Watcher) End() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.handles {
		w.closeFile(f)
	}
	w.handles = map[string]*file{}
	w.emit(EventSFTPEnd, "bytes_read", strconv.FormatInt(w.totalR, 10), "bytes_written", strconv.FormatInt(w.totalW, 10))
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
