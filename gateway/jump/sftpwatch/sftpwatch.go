// Package sftpwatch reads the SFTP protocol (version 3, draft-ietf-secsh-
// filexfer-02, as OpenSSH speaks it) passively from the two byte streams of
// an sftp subsystem channel and reports the file operations in it: opens,
// reads and writes with their byte counts, removals and renames, with
// paths. It never changes or holds back a byte. An operation is reported
// once the server has answered it with success, and a channel's events are
// rate-limited: what passes the limit is counted in one sftp.suppressed
// event at the channel's end. Two exceptions keep a client from hiding an
// operation: a request whose id a later request reuses before the answer
// is reported at once with outcome "unconfirmed", and a request still
// unanswered when the channel ends is reported with outcome "unanswered".
//
// github.com/pkg/sftp keeps its packet decoding unexported (and under
// internal/), so this is a small decoder of the few packets it needs.
package sftpwatch

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Audit event types a Watcher reports.
const (
	// Each of open, remove, rename, mkdir and rmdir carries outcome
	// "unconfirmed" or "unanswered" when reported without the server's
	// success (see the package doc), and no outcome field otherwise.
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
	// limit held events back, requests went unfollowed or request ids were
	// reused: count (how many events held back), types (each type and its
	// count, "sftp.mkdir:9800,sftp.open:12"), paths (a JSON array of up to
	// maxHeldPaths held-back events, {"type","path","new_path"}, the
	// weighty ones first), untracked (requests not followed because too
	// many awaited their answers; 0 mostly) and collisions (requests that
	// reused the id of one awaiting its answer).
	EventSFTPSuppressed = "sftp.suppressed"
)

// Rate limits of a channel's events, each a burst then a rate a second.
// Removals, renames, the read and write totals of a handle and opens for
// writing are weighty and have a budget of their own, far larger, so that
// a flood of cheap events (mkdir, rmdir, opens for reading) cannot hide
// them. sftp.end and sftp.suppressed are never held back.
const (
	eventBurst            = 200
	eventsPerSecond       = 20
	weightyEventBurst     = 10000
	weightyEventPerSecond = 200
)

// maxHeldPaths bounds the held-back events listed in sftp.suppressed, and
// maxHeldPath each path in that list.
const (
	maxHeldPaths = 50
	maxHeldPath  = 256
)

// Outcomes of an operation reported without the server's success.
const (
	outcomeUnconfirmed = "unconfirmed" // its id was reused before the answer
	outcomeUnanswered  = "unanswered"  // the channel ended first
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
	reported      bool   // reported as unconfirmed already
}

// bucket is one rate limit.
type bucket struct {
	tokens, burst, rate float64
	last                time.Time
}

// take spends one token if it has one.
func (b *bucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// heldPath is one held-back event listed in sftp.suppressed.
type heldPath struct {
	Type    string `json:"type"`
	Path    string `json:"path"`
	NewPath string `json:"new_path,omitempty"`
	weighty bool
}

// Watcher follows one sftp channel. Client and Server are fed the bytes
// each side sent, in order; they may be called from different goroutines.
type Watcher struct {
	emit Emit
	now  func() time.Time

	mu      sync.Mutex
	in, out stream
	// pending holds, by request id, the requests awaiting their answers in
	// the order sent: a client may reuse an id, and OpenSSH's sftp-server
	// answers in order, so an answer goes to the first of its id.
	pending    map[uint32][]*request
	npending   int
	handles    map[string]*file
	totalR     int64
	totalW     int64
	disabled   bool
	cheap      bucket
	weighty    bucket
	held       map[string]int // events held back by the rate limit, by type
	heldPaths  []heldPath
	untracked  int
	collisions int
}

type stream struct{ buf []byte }

// New returns a watcher that reports through emit.
func New(emit Emit) *Watcher { return newWatcher(emit, time.Now) }

func newWatcher(emit Emit, now func() time.Time) *Watcher {
	t := now()
	return &Watcher{emit: emit, now: now, pending: map[uint32][]*request{}, handles: map[string]*file{},
		cheap:   bucket{tokens: eventBurst, burst: eventBurst, rate: eventsPerSecond, last: t},
		weighty: bucket{tokens: weightyEventBurst, burst: weightyEventBurst, rate: weightyEventPerSecond, last: t},
		held:    map[string]int{}}
}

// report emits one event unless the channel passed the rate limit of its
// weight (mu held). kv holds "path" and maybe "new_path", listed if held
// back.
func (w *Watcher) report(weighty bool, typ string, kv ...string) {
	b := &w.cheap
	if weighty {
		b = &w.weighty
	}
	if b.take(w.now()) {
		w.emit(typ, kv...)
		return
	}
	w.held[typ]++
	h := heldPath{Type: typ, weighty: weighty}
	for i := 0; i+1 < len(kv); i += 2 {
		switch kv[i] {
		case "path":
			h.Path = bound(kv[i+1], maxHeldPath)
		case "new_path":
			h.NewPath = bound(kv[i+1], maxHeldPath)
		}
	}
	if len(w.heldPaths) < maxHeldPaths {
		w.heldPaths = append(w.heldPaths, h)
	} else if i := slices.IndexFunc(w.heldPaths, func(h heldPath) bool { return !h.weighty }); weighty && i >= 0 {
		w.heldPaths = append(slices.Delete(w.heldPaths, i, i+1), h) // a weighty one displaces a cheap one
	}
}

// reportRequest reports the operation of a request (mu held); outcome is
// empty when the server answered it with success. Reads, writes and
// closes have no event of their own.
func (w *Watcher) reportRequest(r *request, outcome string) {
	var kv []string
	switch r.typ {
	case fxpOpen:
		kv = []string{"path", clean(r.path), "flags", openFlags(r.flags)}
	case fxpRemove, fxpMkdir, fxpRmdir:
		kv = []string{"path", clean(r.path)}
	case fxpRename:
		kv = []string{"path", clean(r.path), "new_path", clean(r.newPath)}
	default:
		return
	}
	if outcome != "" {
		kv = append(kv, "outcome", outcome)
	}
	typ := map[byte]string{fxpOpen: EventSFTPOpen, fxpRemove: EventSFTPRemove, fxpMkdir: EventSFTPMkdir,
		fxpRmdir: EventSFTPRmdir, fxpRename: EventSFTPRename}[r.typ]
	weighty := r.typ == fxpRemove || r.typ == fxpRename || r.typ == fxpOpen && r.flags&(2|4|8|16) != 0
	w.report(weighty, typ, kv...)
}

// follow records a request until its answer (mu held). A request that
// reuses the id of one awaiting its answer gets that one reported at once
// as unconfirmed: which answer is whose then rests on the server answering
// in order, and a client must not hide an operation behind another.
func (w *Watcher) follow(id uint32, r *request) {
	if w.npending >= maxPending {
		w.untracked++
		return
	}
	if q := w.pending[id]; len(q) > 0 {
		w.collisions++
		for _, earlier := range q {
			if !earlier.reported {
				earlier.reported = true
				w.reportRequest(earlier, outcomeUnconfirmed)
			}
		}
	}
	w.pending[id] = append(w.pending[id], r)
	w.npending++
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
	q := w.pending[id]
	if len(q) == 0 {
		return
	}
	req := q[0]
	if len(q) == 1 {
		delete(w.pending, id)
	} else {
		q[0] = nil
		w.pending[id] = q[1:]
	}
	w.npending--
	switch typ {
	case fxpHandle:
		h := r.str()
		if !r.ok || req.typ != fxpOpen {
			return
		}
		if !req.reported {
			w.reportRequest(req, "")
		}
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
		case fxpRemove, fxpMkdir, fxpRmdir, fxpRename:
			if !req.reported {
				w.reportRequest(req, "")
			}
		}
	}
}

// closeFile reports what one handle read and wrote (mu held).
func (w *Watcher) closeFile(f *file) {
	if f.read > 0 {
		w.report(true, EventSFTPRead, "path", clean(f.path), "bytes", strconv.FormatInt(f.read, 10))
	}
	if f.written > 0 {
		w.report(true, EventSFTPWrite, "path", clean(f.path), "bytes", strconv.FormatInt(f.written, 10))
	}
}

// End reports the handles still open, the requests still unanswered, the
// channel's totals and what the rate limit held back.
func (w *Watcher) End() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.handles {
		w.closeFile(f)
	}
	w.handles = map[string]*file{}
	for _, id := range slices.Sorted(maps.Keys(w.pending)) {
		for _, req := range w.pending[id] {
			if !req.reported {
				w.reportRequest(req, outcomeUnanswered)
			}
		}
	}
	w.pending, w.npending = map[uint32][]*request{}, 0
	w.emit(EventSFTPEnd, "bytes_read", strconv.FormatInt(w.totalR, 10), "bytes_written", strconv.FormatInt(w.totalW, 10))
	if len(w.held) == 0 && w.untracked == 0 && w.collisions == 0 {
		return
	}
	count := 0
	var types []string
	for _, typ := range slices.Sorted(maps.Keys(w.held)) {
		count += w.held[typ]
		types = append(types, typ+":"+strconv.Itoa(w.held[typ]))
	}
	slices.SortStableFunc(w.heldPaths, func(a, b heldPath) int { // the weighty first
		switch {
		case a.weighty == b.weighty:
			return 0
		case a.weighty:
			return -1
		}
		return 1
	})
	paths, _ := json.Marshal(append([]heldPath{}, w.heldPaths...)) // never fails on strings; [] when none
	w.emit(EventSFTPSuppressed, "count", strconv.Itoa(count), "types", strings.Join(types, ","), "paths", string(paths),
		"untracked", strconv.Itoa(w.untracked), "collisions", strconv.Itoa(w.collisions))
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
func clean(p string) string { return bound(p, maxPath) }

// bound cuts p to n bytes and replaces what is not printable.
func bound(p string, n int) string {
	if len(p) > n {
		p = p[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(p, "?"))
}
