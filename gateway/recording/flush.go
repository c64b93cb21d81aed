package recording

import (
	"bytes"
	"io"
	"time"
)

// run is the flusher: it writes the buffer every interval, or sooner when
// it passes flushAt, until Close stops it.
func (r *Recorder) run(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.kick:
		}
		r.flush()
	}
}

// flush hands the buffer to the file. The buffer is swapped out under mu and
// written without it, so sessions keep appending while the disk works.
func (r *Recorder) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	out := r.buf
	if len(out) == 0 {
		r.mu.Unlock()
		return
	}
	r.buf, r.spare = r.spare[:0], nil
	close(r.drained)
	r.drained = make(chan struct{})
	r.mu.Unlock()

	var err error
	if r.f != nil && !r.broken {
		if err = r.checkFree(); err == nil {
			err = r.writeInPieces(out)
		} else {
			r.broken = true
		}
	}

	r.mu.Lock()
	r.giveBackLocked(out)
	r.mu.Unlock()
	if err != nil {
		r.fail(err)
	}
}

// writeInPieces writes p in pieces of about writeChunk that end at a line's
// end, noting progress after each for output waiting on a slow disk.
// Called with flushMu held.
func (r *Recorder) writeInPieces(p []byte) error {
	for len(p) > 0 {
		n := len(p)
		if n > writeChunk {
			if n = bytes.LastIndexByte(p[:writeChunk], '\n') + 1; n == 0 {
				n = len(p) // no line ends in the piece: one write
			}
		}
		if err := r.writeOut(p[:n]); err != nil {
			return err
		}
		r.progress.Store(int64(sinceStart()))
		p = p[n:]
	}
	return nil
}

// writeOut writes whole event lines to the file and hashes what the file
// accepted. After a short write (disk full) it cuts the file back to the
// last complete line, so what is on disk still plays; if even that fails the
// partial line is hashed too, so the digest always matches the file. Either
// way the file is not written again. Called with flushMu held.
func (r *Recorder) writeOut(p []byte) error {
	n, err := r.f.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil {
		r.account(p)
		return nil
	}
	r.broken = true
	whole := bytes.LastIndexByte(p[:n], '\n') + 1
	r.account(p[:whole])
	if whole < n {
		if terr := r.f.Truncate(r.written); terr != nil {
			r.account(p[whole:n])
		}
	}
	return err
}

// account adds bytes now in the file to the digest and the counts.
func (r *Recorder) account(p []byte) {
	if r.tee != nil && len(p) > 0 {
		r.tee(p)
	}
	r.sum.Write(p)
	r.written += int64(len(p))
	r.lines += bytes.Count(p, []byte{'\n'})
}
