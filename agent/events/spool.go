package events

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rampart-ssh/rampart/api"
)

// SpoolFile is the spool's file in its directory.
const SpoolFile = "events.db"

// ErrSpoolFull: the spool holds its maximum of undelivered events; the
// tailer waits (sshd's log keeps the lines) until the sender makes room.
var ErrSpoolFull = errors.New("event spool is full")

var (
	bucketEvents = []byte("events")
	bucketMeta   = []byte("meta")
	keyNextSeq   = []byte("next_seq")
	keyAcked     = []byte("acked")
	keyPosition  = []byte("position")
	keySynced    = []byte("synced")
)

// Spool is the on-disk queue of login events not yet acknowledged by the
// cluster: a bbolt file, whose every transaction is fsynced before it
// returns. Each event gets the next sequence number when it is appended,
// in the same transaction that records the log position after it, so a
// restarted tailer resumes exactly after the last event it spooled. Events
// leave the spool only when the cluster acknowledged them.
//
// Pending seqs are always the contiguous range (acked, next_seq): they are
// assigned one by one and acknowledged as a prefix.
type Spool struct {
	db     *bolt.DB
	max    uint64
	notify chan struct{}
}

// OpenSpool opens (creating) the spool in dir, holding at most max
// undelivered events. Only one process can hold it: a second agent on the
// same data dir fails here instead of sending the same events.
func OpenSpool(dir string, max int) (*Spool, error) {
	if max < 1 {
		return nil, fmt.Errorf("spool size %d: must be positive", max)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("event spool: %w", err)
	}
	path := filepath.Join(dir, SpoolFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("event spool %s: %w (is another agent running on this data dir?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketMeta).Get(keyNextSeq) == nil {
			return putUint(tx.Bucket(bucketMeta), keyNextSeq, 1)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("event spool %s: %w", path, err)
	}
	return &Spool{db: db, max: uint64(max), notify: make(chan struct{}, 1)}, nil
}

// Close closes the file.
func (s *Spool) Close() error { return s.db.Close() }

// Notify receives a value after an append: there may be events to send.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// SpoolState is what the spool holds, for logs and tests.
type SpoolState struct {
	// NextSeq is the seq the next event will get; Acked is the last seq
	// the cluster acknowledged (or that the spool skipped past).
	NextSeq, Acked uint64
	Pending        int
	Synced         bool
	Position       Position
	HasPosition    bool
}

// State reads the spool's bookkeeping.
func (s *Spool) State() (SpoolState, error) {
	var st SpoolState
	err := s.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		st.NextSeq, st.Acked = getUint(m, keyNextSeq), getUint(m, keyAcked)
		st.Pending = int(st.NextSeq - 1 - st.Acked)
		st.Synced = m.Get(keySynced) != nil
		if raw := m.Get(keyPosition); raw != nil {
			st.HasPosition = true
			return json.Unmarshal(raw, &st.Position)
		}
		return nil
	})
	return st, err
}

// Append numbers events, stores them and the log position after them, in
// one transaction. It fails with ErrSpoolFull (storing nothing) when they
// do not fit.
func (s *Spool) Append(events []api.LoginEvent, pos Position) ([]api.LoginEvent, error) {
	out := make([]api.LoginEvent, len(events))
	err := s.db.Update(func(tx *bolt.Tx) error {
		m, b := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		next, acked := getUint(m, keyNextSeq), getUint(m, keyAcked)
		if next-1-acked+uint64(len(events)) > s.max {
			return ErrSpoolFull
		}
		for i, e := range events {
			e.Seq = next
			buf, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(next), buf); err != nil {
				return err
			}
			out[i] = e
			next++
		}
		if err := putUint(m, keyNextSeq, next); err != nil {
			return err
		}
		return putPosition(m, pos)
	})
	if err != nil {
		return nil, err
	}
	if len(events) > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return out, nil
}

// Checkpoint records a log position with no event before it: lines that
// logged no login are not read again after a restart.
func (s *Spool) Checkpoint(pos Position) error {
	_, err := s.Append(nil, pos)
	return err
}

// Pending returns up to max unacknowledged events, oldest first.
func (s *Spool) Pending(max int) ([]api.LoginEvent, error) {
	var out []api.LoginEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var e api.LoginEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("spooled event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Ack forgets the events up to seq: the cluster has recorded them.
func (s *Spool) Ack(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if seq <= getUint(m, keyAcked) {
			return nil
		}
		if next := getUint(m, keyNextSeq); seq >= next {
			return fmt.Errorf("ack of seq %d: the spool has numbered only up to %d", seq, next-1)
		}
		if err := deleteUpTo(tx.Bucket(bucketEvents), seq); err != nil {
			return err
		}
		return putUint(m, keyAcked, seq)
	})
}

// Rebase makes the pending events follow clusterLast, the last seq the
// cluster recorded from this server, and marks the spool synced. A spool
// that is new (or older than what the cluster has, such as a data dir
// restored from a backup) would otherwise number events the cluster takes
// for ones it already has, and they would be skipped. The pending events
// keep their order; none of them can have been recorded, since the cluster
// has seen seqs this spool never used. It reports whether seqs changed.
func (s *Spool) Rebase(clusterLast uint64) (bool, error) {
	changed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		m, b := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		if err := m.Put(keySynced, []byte{1}); err != nil {
			return err
		}
		next, acked := getUint(m, keyNextSeq), getUint(m, keyAcked)
		if clusterLast <= acked {
			return nil // the cluster has nothing this spool may still number
		}
		changed = true
		var pending [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			pending = append(pending, append([]byte(nil), v...))
		}
		if err := deleteUpTo(b, next); err != nil {
			return err
		}
		seq := clusterLast + 1
		for _, v := range pending {
			var e api.LoginEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			e.Seq = seq
			buf, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), buf); err != nil {
				return err
			}
			seq++
		}
		if err := putUint(m, keyAcked, clusterLast); err != nil {
			return err
		}
		return putUint(m, keyNextSeq, seq)
	})
	return changed, err
}

func deleteUpTo(b *bolt.Bucket, seq uint64) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func getUint(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, binary.BigEndian.AppendUint64(nil, v))
}

func putPosition(m *bolt.Bucket, pos Position) error {
	buf, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	return m.Put(keyPosition, buf)
}
