package recording

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrRecordingFailed wraps every failure to create or write a recording
	// (disk full, unwritable directory, a disk too slow to keep up), with the
	// cause (e.g. syscall.ENOSPC) also in the chain.
	ErrRecordingFailed = errors.New("session recording failed")
	// ErrBadSessionID: the session id could name something outside the
	// recordings directory, or is empty or too long.
	ErrBadSessionID = errors.New("session id not usable as a recording name")
	// ErrClosed: the recorder was closed.
	ErrClosed = errors.New("recording closed")
	// ErrBadRecording: the input is not an asciicast v2 recording.
	ErrBadRecording = errors.New("not an asciicast v2 recording")
	// ErrDigestMismatch: a copy of a recording does not hash to the SHA-256
	// the cluster recorded for it.
	ErrDigestMismatch = errors.New("the recording does not match its recorded SHA-256")
)

// Policy says what a recording failure does to the session.
type Policy int

const (
	// FailClosed: the first failure makes every later Output, Input, Resize
	// and Flush return an error wrapping ErrRecordingFailed, so the caller
	// ends the session. The zero value, because an unrecorded session is what
	// a project that records must not get by accident.
	FailClosed Policy = iota
	// FailOpen: the failure is reported once through OnError, later events
	// are dropped, and the session goes on.
	FailOpen
)

func (p Policy) String() string {
	switch p {
	case FailClosed:
		return "fail-closed"
	case FailOpen:
		return "fail-open"
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// Config describes one recording.
type Config struct {
	// Dir is the recordings directory; the file goes in a subdirectory named
	// for the UTC day the session started. Required.
	Dir string
	// SessionID names the file. Letters, digits, '.', '_' and '-' only, not
	// starting with '.' or '-', at most 128 bytes.
	SessionID string
	// Width and Height are the terminal size from pty-req; zero or less
	// means 80×24.
	Width, Height int
	// Term and Shell go into the header's env (omitted when empty).
	Term, Shell string
	// Title goes into the header (omitted when empty).
	Title string
	// Command goes into the header: the command of an exec session
	// (omitted when empty).
	Command string
	// RecordInput records what the person types as "i" events. Off, Input
	// and InputWriter discard everything.
	RecordInput bool
	// Policy is the failure policy; the zero value is FailClosed.
	Policy Policy
	// OnError, if not nil, is called once with the first failure (wrapping
	// ErrRecordingFailed), whatever the policy, so the caller can audit it
	// and, under FailClosed, end an idle session before its next write; a
	// failure that New returns as its error is not reported again here. It
	// may be called from the recorder's flusher goroutine and must neither
	// block nor call Close.
	OnError func(error)
	// FlushInterval is how often buffered events reach the file; zero means
	// one second, the most a crash of the node may lose.
	FlushInterval time.Duration
	// MaxStall is how long output may wait for the disk to take the events
	// buffered before it (maxBacklog bytes) before the recording fails;
	// zero means DefaultMaxStall.
	MaxStall time.Duration
	// Now is the clock for the header timestamp, event times and the
	// duration; nil means time.Now.
	Now func() time.Time
	// MaxBytes caps the file (header included); 0 means no cap, otherwise
	// at least MinMaxBytes. The event
	// that would pass it is not written, and the recording fails with a
	// LimitError wrapping ErrSizeLimit.
	MaxBytes int64
	// MinFreeBytes is the free-space floor of the recordings disk: New
	// refuses to start, and a running recording fails before its next
	// write, with a LimitError wrapping ErrDiskLow, when less is free. 0
	// means no floor.
	MinFreeBytes uint64
	// FreeSpace measures the recordings disk's free bytes; nil means
	// FreeSpace(Dir).
	FreeSpace func() (uint64, error)
	// Tee, if not nil, is given every run of bytes once the file has taken
	// it, in file order, so a copy elsewhere (a live replica on another
	// node) is the file byte for byte. It runs with the recorder's write
	// lock held: it must not block, and must copy p.
	Tee func(p []byte)
}

// Summary describes a closed recording: what goes into the session record.
type Summary struct {
	// Path is the file, or "" if none was created (FailOpen with an
	// unwritable directory).
	Path string
	// SHA256 is the lower-case hex digest of exactly the bytes in the file
	// ("" without a file).
	SHA256 string
	// Bytes is the file's size, Events its number of event lines.
	Bytes  int64
	Events int
	// Duration runs from the start of the recording to Close.
	Duration time.Duration
}

// file is what a Recorder needs of its *os.File; tests substitute a fake.
type file interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

// openFunc creates a recording file; os.OpenFile in production.
type openFunc func(name string, flag int, perm os.FileMode) (file, error)

func osOpen(name string, flag int, perm os.FileMode) (file, error) {
	return os.OpenFile(name, flag, perm)
}

// Buffering. Events are appended to an in-memory buffer under mu and written
// by the flusher, so a session does not wait for a disk that keeps up:
// flushAt wakes the flusher early. Output that outruns the disk waits once
// maxBacklog bytes are buffered, so the session slows to the disk's pace
// (the SSH window pushing back on the sender); a disk that writes nothing
// for MaxStall fails the recording instead of hanging the session. The
// flusher writes in pieces of about writeChunk, whole lines each, so a live
// copy (Tee) gets them in pieces too, and each piece counts as progress (a
// disk slower than a piece per MaxStall counts as stalled). Meanwhile a
// recording holds the buffer being written and the one filling, each the
// backlog and one write's events (a write of zeros grows sixfold as JSON)
// with room to grow: about 12 MiB measured for output of zeros, more while
// recorded input floods too. keepCap bounds what an idle session keeps.
const (
	flushAt    = 32 << 10
	maxBacklog = 4 << 20
	// Input waits only past twice that, so what the person types (^C to
	// stop a flood of output) is not held behind output waiting for the
	// disk; a flood of recorded input still waits.
	inputBacklog = 2 * maxBacklog
	writeChunk   = 1 << 20
	keepCap      = 16 << 10
)

// DefaultMaxStall is Config.MaxStall's default.
const DefaultMaxStall = 10 * time.Second

// Recorder writes one session's asciicast v2 file. Its methods are safe for
// concurrent use: output, input, resizes and the flusher run on different
// goroutines. Close must be called; it stops the flusher.
type Recorder struct {
	policy      Policy
	onError     func(error)
	recordInput bool
	now         func() time.Time
	start       time.Time
	path        string // "" when no file was created
	maxBytes    int64
	maxStall    time.Duration
	minFree     uint64
	freeSpace   func() (uint64, error)
	tee         func(p []byte)

	// flushMu serialises writes to the file and guards the fields below it.
	// Lock order: flushMu before mu; neither is held while calling OnError.
	flushMu sync.Mutex
	f       file // nil once closed, or if never created
	sum     hash.Hash
	written int64 // bytes in the file, all of them hashed
	lines   int   // complete lines in the file, the header included
	broken  bool  // a write failed: the file is never written again

	mu      sync.Mutex
	buf     []byte // events not yet handed to the file
	spare   []byte // the other buffer, reused between flushes
	scratch []byte
	out, in stream
	// accepted counts the bytes handed to the file so far, header included,
	// and those still in buf: what MaxBytes caps.
	accepted int64
	last     time.Duration // time of the latest event; events never go back
	err      error         // the first failure, wrapping ErrRecordingFailed
	closed   bool
	// drained is closed (and replaced) each time the flusher takes buf:
	// what output waiting for room waits on.
	drained chan struct{}
	// progress is when the flusher last wrote a piece (sinceStart).
	progress atomic.Int64

	kick chan struct{} // wakes the flusher when buf passes flushAt
	stop chan struct{}
	done chan struct{} // closed when the flusher has returned

	closeOnce sync.Once
	summary   Summary
	closeErr  error
}

// New creates the recording file, writes its header and starts the flusher.
// A bad Config or session id is always an error. A file that cannot be
// created or written is an error wrapping ErrRecordingFailed under
// FailClosed; under FailOpen it is reported through OnError and New returns
// a Recorder that drops everything, so the caller need not tell the cases
// apart.
func New(cfg Config) (*Recorder, error) {
	return newRecorder(cfg, osOpen)
}

func newRecorder(cfg Config, open openFunc) (*Recorder, error) {
	if err := ValidateSessionID(cfg.SessionID); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("recording: no recordings directory")
	}
	if cfg.MaxBytes != 0 && cfg.MaxBytes < MinMaxBytes {
		return nil, fmt.Errorf("recording: size cap %d bytes is below %d", cfg.MaxBytes, MinMaxBytes)
	}
	if cfg.Policy != FailClosed && cfg.Policy != FailOpen {
		return nil, fmt.Errorf("recording: unknown failure policy %v", cfg.Policy)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		cfg.Width, cfg.Height = 80, 24
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxStall <= 0 {
		cfg.MaxStall = DefaultMaxStall
	}
	r := &Recorder{
		policy:      cfg.Policy,
		onError:     cfg.OnError,
		recordInput: cfg.RecordInput,
		now:         cfg.Now,
		sum:         sha256.New(),
		out:         stream{kind: EventOutput},
		in:          stream{kind: EventInput},
		maxBytes:    cfg.MaxBytes,
		maxStall:    cfg.MaxStall,
		drained:     make(chan struct{}),
		minFree:     cfg.MinFreeBytes,
		freeSpace:   cfg.FreeSpace,
		tee:         cfg.Tee,
	}
	if r.freeSpace == nil {
		dir := cfg.Dir
		r.freeSpace = func() (uint64, error) { return FreeSpace(dir) }
	}
	r.start = r.now()
	err := r.checkFree()
	if err == nil {
		err = r.create(cfg, open)
	}
	if err != nil {
		werr := fmt.Errorf("%w: %w", ErrRecordingFailed, err)
		if cfg.Policy == FailClosed {
			return nil, werr
		}
		r.err = werr
		r.report(werr)
		return r, nil
	}
	r.kick = make(chan struct{}, 1)
	r.stop = make(chan struct{})
	r.done = make(chan struct{})
	go r.run(cfg.FlushInterval)
	return r, nil
}

// create makes dir/day/id.cast and writes the header straight through, so a
// full disk or a read-only directory shows before the session starts. A
// file whose header did not make it is removed.
func (r *Recorder) create(cfg Config, open openFunc) error {
	dayDir := filepath.Join(cfg.Dir, r.start.UTC().Format(time.DateOnly))
	if err := os.MkdirAll(dayDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dayDir, cfg.SessionID+".cast")
	// O_EXCL: never append to or replace another recording, and never
	// follow a symlink planted at the name.
	f, err := open(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	hdr, err := json.Marshal(newHeader(cfg, r.start))
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	r.f = f
	if err := r.writeOut(append(hdr, '\n')); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		r.f, r.written, r.lines, r.broken = nil, 0, 0, false
		r.sum.Reset()
		return err
	}
	r.path = path
	r.accepted = r.written
	return nil
}

func newHeader(cfg Config, start time.Time) Header {
	h := Header{Version: 2, Width: cfg.Width, Height: cfg.Height, Timestamp: start.Unix(), Title: cfg.Title, Command: cfg.Command}
	env := map[string]string{}
	if cfg.Term != "" {
		env["TERM"] = cfg.Term
	}
	if cfg.Shell != "" {
		env["SHELL"] = cfg.Shell
	}
	if len(env) > 0 {
		h.Env = env
	}
	return h
}

// ValidateSessionID reports whether id can name a recording file: it must
// stay a single plain name inside the recordings directory.
func ValidateSessionID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("%w: %q", ErrBadSessionID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q", ErrBadSessionID, id)
		}
	}
	return nil
}

// Output records p as output: what the terminal showed.
func (r *Recorder) Output(p []byte) error { return r.record(&r.out, p, maxBacklog) }

// Input records p as input when RecordInput is set, and discards it
// otherwise.
func (r *Recorder) Input(p []byte) error {
	if !r.recordInput {
		return nil
	}
	return r.record(&r.in, p, inputBacklog)
}

// Resize records a window change to w columns by h rows. Sizes of zero or
// less (some clients send them) are ignored.
func (r *Recorder) Resize(w, h int) error {
	if w <= 0 || h <= 0 {
		return nil
	}
	return r.append(func(t time.Duration) {
		r.buf = appendEventStart(r.buf, t, EventResize)
		r.buf = strconv.AppendInt(r.buf, int64(w), 10)
		r.buf = append(r.buf, 'x')
		r.buf = strconv.AppendInt(r.buf, int64(h), 10)
		r.buf = appendEventEnd(r.buf)
	}, 0)
}

// OutputWriter returns an io.Writer for Output, to sit in an io.MultiWriter
// or io.TeeReader beside the person's channel. Under FailClosed its Write
// fails once the recording has, which ends the copy.
func (r *Recorder) OutputWriter() io.Writer { return eventWriter{r.Output} }

// InputWriter returns an io.Writer for Input; without RecordInput it
// discards everything.
func (r *Recorder) InputWriter() io.Writer {
	if !r.recordInput {
		return io.Discard
	}
	return eventWriter{r.Input}
}

type eventWriter struct{ record func([]byte) error }

func (w eventWriter) Write(p []byte) (int, error) {
	if err := w.record(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *Recorder) record(s *stream, p []byte, backlog int) error {
	if len(p) == 0 {
		return nil
	}
	return r.append(func(t time.Duration) {
		r.reserveLocked(len(p) + len(p)/8 + 64) // text, with a line's escapes
		r.buf = appendStreamEvents(r.buf, s, t, p, false, &r.scratch)
		if cap(r.scratch) > keepCap {
			r.scratch = nil
		}
	}, backlog)
}

// bulkBuffers hold the events of sessions whose output flows fast: a
// recorder takes one when its buffer is empty and a large write (over 4 KiB;
// typing and prompts grow the small spare instead) comes, and
// the flusher gives it back once written, so a bulk transfer reuses two
// buffers instead of growing a new one for every flush, and an idle
// session keeps none.
var bulkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, bulkBufferSize); return &b }}

const bulkBufferSize = 256 << 10

// reserveLocked makes room in buf for about n more bytes.
func (r *Recorder) reserveLocked(n int) {
	if cap(r.buf)-len(r.buf) >= n {
		return
	}
	if len(r.buf) == 0 && n > keepCap/4 && n <= bulkBufferSize {
		if r.buf != nil && cap(r.buf) <= keepCap {
			r.spare = r.buf[:0] // kept for when output is slow again
		}
		r.buf = (*bulkBuffers.Get().(*[]byte))[:0]
		return
	}
	// Doubling (each byte copied O(1) times), but not past what the backlog
	// needs.
	want := max(len(r.buf)+n, min(2*cap(r.buf), maxBacklog+writeChunk))
	r.buf = slices.Grow(r.buf, want-len(r.buf))
}

// giveBackLocked returns a written buffer: a small one as the recorder's
// spare, a bulk one (up to writeChunk; larger ones only grew while the disk
// was slow) to bulkBuffers. Called with mu held.
func (r *Recorder) giveBackLocked(out []byte) {
	switch {
	case cap(out) <= keepCap:
		r.spare = out[:0]
	case cap(out) >= bulkBufferSize && cap(out) <= writeChunk:
		out = out[:0]
		bulkBuffers.Put(&out)
	}
}

// append adds events to the buffer under mu, stamped with the current time,
// and applies the failure policy. With a backlog (not 0) it first waits
// while that many bytes wait for the disk (awaitRoomLocked).
func (r *Recorder) append(add func(t time.Duration), backlog int) error {
	r.mu.Lock()
	stalled := backlog > 0 && r.awaitRoomLocked(backlog)
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.err != nil {
		err := r.policyErrLocked()
		r.mu.Unlock()
		return err
	}
	var failed error
	if stalled {
		// The disk took nothing for maxStall: give up rather than hang
		// the session. (Checked before appending, so one large write
		// never waits on its own.)
		failed = r.setErrLocked(fmt.Errorf("%d bytes not yet written, nothing written for %s: the disk is not keeping up", len(r.buf), r.maxStall))
	} else {
		before := len(r.buf)
		add(r.elapsedLocked())
		grown := int64(len(r.buf) - before)
		if r.maxBytes > 0 && r.accepted+grown > r.maxBytes {
			// Not written: the file stays within the cap, and nothing is
			// appended after a failure (Close adds no tail either).
			r.buf = r.buf[:before]
			failed = r.setErrLocked(sizeLimitError(r.maxBytes))
		} else {
			r.accepted += grown
		}
	}
	wake := len(r.buf) >= flushAt
	r.mu.Unlock()
	if failed != nil {
		r.report(failed)
		if r.policy == FailClosed {
			return failed
		}
		return nil
	}
	if wake {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// awaitRoomLocked holds a write while backlog bytes wait for the disk,
// until the flusher takes them, the recorder closes or fails, or maxStall
// passes with the flusher writing nothing (stalled). Called and returns
// with mu held.
func (r *Recorder) awaitRoomLocked(backlog int) (stalled bool) {
	waiting := func() bool { return len(r.buf) >= backlog && !r.closed && r.err == nil }
	if !waiting() {
		return false
	}
	timer := time.NewTimer(r.maxStall)
	defer timer.Stop()
	for waiting() {
		drained := r.drained
		r.mu.Unlock()
		select {
		case r.kick <- struct{}{}:
		default:
		}
		select {
		case <-drained:
		case <-timer.C:
			// A disk that is slow but writing is not stalled.
			if idle := sinceStart() - time.Duration(r.progress.Load()); idle < r.maxStall {
				timer.Reset(r.maxStall - idle)
				break
			}
			r.mu.Lock()
			return waiting()
		}
		r.mu.Lock()
	}
	return false
}

// monoStart anchors sinceStart, a monotonic clock for the stall check.
var monoStart = time.Now()

func sinceStart() time.Duration { return time.Since(monoStart) }

// elapsedLocked is the time since the start, never less than the last
// event's, so a clock stepping back cannot reorder the recording.
func (r *Recorder) elapsedLocked() time.Duration {
	d := r.now().Sub(r.start)
	if d < r.last {
		d = r.last
	}
	r.last = d
	return d
}

// setErrLocked keeps the first failure and returns it wrapped, or nil if
// there was one already (which has been or is being reported).
func (r *Recorder) setErrLocked(err error) error {
	if r.err != nil {
		return nil
	}
	r.err = fmt.Errorf("%w: %w", ErrRecordingFailed, err)
	return r.err
}

func (r *Recorder) policyErrLocked() error {
	if r.policy == FailClosed {
		return r.err
	}
	return nil
}

func (r *Recorder) report(err error) {
	if r.onError != nil {
		r.onError(err)
	}
}

// Close stops the flusher, writes what is buffered (a character left
// incomplete at the end becomes U+FFFD), syncs and closes the file. It
// returns the summary and, whatever the policy, the recording's first
// failure, in which case the summary describes a truncated recording. Later
// calls return the same.
func (r *Recorder) Close() (Summary, error) {
	r.closeOnce.Do(func() { r.summary, r.closeErr = r.close() })
	return r.summary, r.closeErr
}

func (r *Recorder) close() (Summary, error) {
	r.mu.Lock()
	r.closed = true
	end := r.elapsedLocked()
	if r.err == nil {
		for _, s := range []*stream{&r.out, &r.in} {
			if s.n > 0 {
				r.buf = appendStreamEvents(r.buf, s, end, nil, true, &r.scratch)
			}
		}
	}
	r.mu.Unlock()

	if r.stop != nil {
		close(r.stop)
		<-r.done
	}
	r.flush()

	r.flushMu.Lock()
	var ferr error
	if r.f != nil {
		if !r.broken {
			ferr = r.f.Sync()
		}
		if err := r.f.Close(); err != nil && ferr == nil {
			ferr = err
		}
		r.f = nil
	}
	sum := Summary{Path: r.path, Bytes: r.written, Events: max(r.lines-1, 0), Duration: end}
	if r.path != "" {
		sum.SHA256 = hex.EncodeToString(r.sum.Sum(nil))
	}
	r.flushMu.Unlock()

	if ferr != nil {
		r.fail(ferr)
	}
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	return sum, err
}

// fail records err as the failure if it is the first, and reports it.
func (r *Recorder) fail(err error) {
	r.mu.Lock()
	werr := r.setErrLocked(err)
	r.mu.Unlock()
	if werr != nil {
		r.report(werr)
	}
}

// Flush writes buffered events to the file now, without waiting for the
// flusher. It returns what Output would: the failure under FailClosed, nil
// under FailOpen.
func (r *Recorder) Flush() error {
	r.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		return nil
	}
	return r.policyErrLocked()
}
