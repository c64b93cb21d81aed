package jump

import (
	"io"
	"sync"
	"sync/atomic"
)

// Idle proxied sessions are most of a busy node's memory: every channel
// pair has three copies (output, stderr, input) blocked in Read. relay keeps
// a blocked Read on a small buffer and borrows pooled ones only while data
// flows, which keeps an idle session's footprint small without slowing bulk
// transfers. A packet-sized buffer (32 KiB) serves a sender that is not
// ahead (one packet a read); when reads fill it, the sender is ahead and a
// larger one takes several packets a read, so fewer reads, window
// adjustments and writes carry the same bytes (download through the node
// 0.77x the OpenSSH jump host with 32 KiB reads, 0.91x with 128 KiB,
// AES-GCM on every leg; docs/benchmarks.md). A relay that waits for data
// holds at most the packet-sized one, unless its last read filled the
// larger one.
const (
	idleReadSize = 512
	// A read shorter than bulkExitSize means the sender has slowed down:
	// back to the small buffer. (Fixed, not a fraction of a buffer: one
	// packet a read must not send the relay back every packet.)
	bulkExitSize = 8 << 10
)

// bulkTiers are the pooled buffers' sizes, smallest first.
var bulkTiers = [...]int{32 << 10, 128 << 10}

var bulkPools [len(bulkTiers)]sync.Pool

func init() {
	for i, size := range bulkTiers {
		bulkPools[i].New = func() any { b := make([]byte, size); return &b }
	}
}

// bulkHeld is the bytes of pooled buffers relays hold (for tests).
var bulkHeld atomic.Int64

// relay copies src to dst until src ends or a write fails, and returns the
// bytes written. A read that fills the small buffer means more is waiting:
// relay then reads through pooled buffers (relayBulk) until a read comes
// back short of bulkExitSize.
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

// relayBulk reads through a packet-sized pooled buffer, moving to the
// larger one while reads fill the buffer and back when they bring less
// than a packet; done reports that src ended or dst failed.
func relayBulk(dst io.Writer, src io.Reader) (total int64, done bool, err error) {
	tier := 0
	bp := takeBulk(tier)
	defer func() { giveBulk(tier, bp) }()
	for {
		buf := *bp
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
		next := tier
		switch {
		case n < bulkExitSize:
			return total, false, nil
		case n == len(buf) && tier+1 < len(bulkTiers):
			next = tier + 1
		case tier > 0 && n < bulkTiers[tier-1]:
			next = tier - 1
		}
		if next != tier {
			giveBulk(tier, bp)
			tier, bp = next, takeBulk(next)
		}
	}
}

func takeBulk(tier int) *[]byte {
	bulkHeld.Add(int64(bulkTiers[tier]))
	return bulkPools[tier].Get().(*[]byte)
}

func giveBulk(tier int, bp *[]byte) {
	bulkHeld.Add(-int64(bulkTiers[tier]))
	bulkPools[tier].Put(bp)
}

func eofIsNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}
