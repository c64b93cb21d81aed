package recording

import (
	"errors"
	"fmt"
)

// Limits. A recording shares a disk with whatever else the node keeps there
// (raft's log, by default), so one person writing without end into a pty
// must not be able to fill it: a recording has a size cap, and a recording
// stops (under FailClosed, with its session) when the disk's free space falls
// below a floor.
// MinMaxBytes is the smallest size cap a recording takes: room for its
// header and some events.
const MinMaxBytes = 4096

var (
	// ErrSizeLimit: the recording reached Config.MaxBytes.
	ErrSizeLimit = errors.New("recording reached its size limit")
	// ErrDiskLow: the recordings disk has less free space than
	// Config.MinFreeBytes.
	ErrDiskLow = errors.New("recordings disk below its free-space floor")
)

// LimitError is a recording stopped by a limit rather than broken by the
// disk. It wraps ErrSizeLimit or ErrDiskLow, and says what the person whose
// session it ends may be told.
type LimitError struct {
	err    error
	detail string
}

func (e *LimitError) Error() string { return e.err.Error() + ": " + e.detail }
func (e *LimitError) Unwrap() error { return e.err }

// UserMessage is fit to show the person: no path, no internals.
func (e *LimitError) UserMessage() string {
	if errors.Is(e.err, ErrSizeLimit) {
		return "the session's recording reached its size limit"
	}
	return "the bastion's recordings disk is nearly full"
}

func sizeLimitError(max int64) error {
	return &LimitError{err: ErrSizeLimit, detail: fmt.Sprintf("%d bytes", max)}
}

// DiskLowError reports free bytes below the floor min.
func DiskLowError(free, min uint64) error {
	return &LimitError{err: ErrDiskLow, detail: fmt.Sprintf("%d bytes free, floor %d", free, min)}
}

// checkFree fails the recording when the disk is below the floor. Called by
// the flusher before each write, with flushMu held; the cost is one statfs.
func (r *Recorder) checkFree() error {
	if r.minFree == 0 || r.freeSpace == nil {
		return nil
	}
	free, err := r.freeSpace()
	if err != nil {
		return nil // not knowable here: the write itself will tell
	}
	if free < r.minFree {
		return DiskLowError(free, r.minFree)
	}
	return nil
}
