package jump

import (
	"io"
	"sync"
)

// Idle proxied sessions are most of a busy node's memory: every channel
// pair has three copies (output, stderr, input) blocked in Read. relay keeps
// a blocked Read on a small buffer and borrows a large pooled one only
// while data flows, which keeps an idle session's footprint small without
// slowing bulk transfers. The bulk buffer is larger than an SSH packet (32
// KiB): when the sender is ahead, one read takes several packets at once,
// so fewer reads, window adjustments and writes carry the same bytes
// (download through the node 0.77x the OpenSSH jump host with 32 KiB, 0.91x
// with 128 KiB, AES-GCM on every leg; docs/benchmarks.md).
// A bulk read shorter than bulkExitSize means the sender has slowed down:
// relay goes back to the small buffer. (A fixed size, not a fraction of
// the buffer: one SSH packet, up to 32 KiB, is a full read when the sender
// is not ahead, and must not send the relay back every packet.)
const (
	idleReadSize = 512
	bulkReadSize = 128 << 10
	bulkExitSize = 8 << 10
)

var bulkBuffers = sync.Pool{New: func() any { b := make([]byte, bulkReadSize); return &b }}

// relay copies src to dst until src ends or a write fails, and returns the
// bytes written. A read that fills the small buffer means more is waiting:
// relay then reads through a pooled buffer until a read comes back short
// (the sender is drained), and returns the buffer before blocking again.
func relay(dst io.Writer, src io.Reader) (int64, error) {
	var small [idleReadSize]byte
	var total int64
	for {
		n, err := src.Read(small[:])
		if n > 0 {
			w, werr := dst.Write(small[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil {
			return total, eofIsNil(err)
		}
		if n < len(small) {
			continue
		}
		written, done, err := relayBulk(dst, src)
		total += written
		if done {
			return total, err
		}
	}
}

// relayBulk reads through a pooled buffer while reads bring at least
// bulkExitSize; done reports that src ended or dst failed.
func relayBulk(dst io.Writer, src io.Reader) (total int64, done bool, err error) {
	bp := bulkBuffers.Get().(*[]byte)
	defer bulkBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, true, werr
			}
		}
		if rerr != nil {
			return total, true, eofIsNil(rerr)
		}
		if n < bulkExitSize {
			return total, false, nil
		}
	}
}

func eofIsNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}
