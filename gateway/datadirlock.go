package gateway

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// lockFile is the data dir's lock: held (flock) by the node that uses the
// directory, and holding its pid.
const lockFile = "rampartd.lock"

// ErrDataDirInUse: another process holds the data dir's lock.
var ErrDataDirInUse = errors.New("data dir in use")

// dirLock is a held data dir lock; release lets it go.
type dirLock struct{ f *os.File }

// lock takes the data dir's lock without waiting: a second node on the same
// directory would otherwise wait forever in bolt's own lock on raft.db, deaf
// to Ctrl-C. The lock ends with the process, however it ends.
func (d dataDir) lock() (*dirLock, error) {
	p := d.path(lockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir lock %s: %w", p, err)
	}
	if !held {
		pid := holderPID(p)
		f.Close()
		return nil, fmt.Errorf("%w (pid %s): another rampartd runs on %s; stop it, or give this node its own data_dir", ErrDataDirInUse, pid, string(d))
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir lock %s: %w", p, err)
	}
	return &dirLock{f: f}, nil
}

// holderPID reads the pid the holder wrote, waiting a moment for a holder
// that has just taken the lock to write it.
func holderPID(path string) string {
	deadline := time.Now().Add(time.Second)
	for {
		b, _ := os.ReadFile(path)
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
		if time.Now().After(deadline) {
			return "unknown"
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// release lets the lock go; the file stays (removing it would race with a
// node that opened it to wait).
func (l *dirLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
