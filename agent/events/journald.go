package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// JournalSource follows sshd's messages in the systemd journal through
// `journalctl --follow --output=json`, resuming after the cursor of the last
// entry handed over. It takes only entries journald itself attributes to
// sshd running as root (_COMM and _UID are set by journald, not by the
// sender), so a local user cannot forge a login with `logger -t sshd`.
type JournalSource struct {
	// Journalctl is the command ("journalctl" if empty).
	Journalctl string
	Logger     *slog.Logger
}

// journalMatches select sshd's entries: the listener, and since OpenSSH 9.8
// the per-connection processes.
var journalMatches = []string{"_COMM=sshd", "_COMM=sshd-session", "_COMM=sshd-auth"}

// journalEntry is the part of a journal entry the source reads.
type journalEntry struct {
	Cursor   string          `json:"__CURSOR"`
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
	PID      string          `json:"_PID"`
	UID      string          `json:"_UID"`
	Comm     string          `json:"_COMM"`
}

// Run implements Source. journalctl is started again (after the last
// cursor) whenever it exits, with backoff.
func (s *JournalSource) Run(ctx context.Context, from Position, emit func(Line) error) error {
	cursor, fromNow := from.Cursor, false
	if cursor == "" {
		// First start: begin after the newest sshd entry there is, and say
		// so, so that a restart resumes there rather than at "now". With
		// no sshd entry at all, the journal is followed from its start.
		c, err := s.latestCursor(ctx)
		if err != nil {
			s.Logger.Warn("cannot read the journal's newest sshd entry; following new entries only", "err", err)
			fromNow = true
		}
		cursor = c
		if err := emit(Line{Pos: Position{Cursor: cursor}}); err != nil {
			return err
		}
		s.Logger.Info("reading sshd's journal from now on")
	} else {
		s.Logger.Info("resuming sshd's journal")
	}
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		last, err := s.follow(ctx, cursor, fromNow, emit)
		if last != "" {
			cursor = last
		}
		var emitErr *emitError
		if errors.As(err, &emitErr) {
			return emitErr.err
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		s.Logger.Warn("journalctl stopped; starting it again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// emitError carries a failure of emit out of follow: it ends Run.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }

func (s *JournalSource) command() string {
	if s.Journalctl != "" {
		return s.Journalctl
	}
	return "journalctl"
}

// latestCursor is the cursor of the newest sshd entry, "" if none.
func (s *JournalSource) latestCursor(ctx context.Context) (string, error) {
	args := append([]string{"--output=json", "--no-pager", "--lines=1"}, journalMatches...)
	out, err := exec.CommandContext(ctx, s.command(), args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.command(), err)
	}
	var e journalEntry
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		// Anything but an entry ("-- No entries --") is not one.
		if bytes.HasPrefix(l, []byte("{")) && json.Unmarshal(l, &e) != nil {
			return "", fmt.Errorf("%s: output is not JSON", s.command())
		}
	}
	return e.Cursor, nil
}

// follow runs journalctl after cursor (without one: from the journal's
// start, or only new entries when fromNow) until it exits or ctx ends, and
// returns the cursor of the last entry handed over.
func (s *JournalSource) follow(ctx context.Context, cursor string, fromNow bool, emit func(Line) error) (string, error) {
	args := []string{"--follow", "--output=json", "--no-pager", "--all"}
	switch {
	case cursor != "":
		// --no-tail: every entry after the cursor, not the last ten.
		args = append(args, "--after-cursor="+cursor, "--no-tail")
	case fromNow:
		args = append(args, "--lines=0")
	default:
		args = append(args, "--no-tail")
	}
	args = append(args, journalMatches...)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, s.command(), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", s.command(), err)
	}
	last, readErr := s.read(stdout, emit)
	cancel()
	waitErr := cmd.Wait()
	if readErr != nil {
		return last, readErr
	}
	if ctx.Err() != nil {
		return last, nil
	}
	return last, fmt.Errorf("%s exited: %v: %s", s.command(), waitErr, strings.TrimSpace(stderr.String()))
}

// read hands over the entries journalctl writes.
func (s *JournalSource) read(r io.Reader, emit func(Line) error) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	last := ""
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue
		}
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Cursor == "" {
			s.Logger.Warn("skipping a journal entry that is not JSON with a cursor", "err", err)
			continue
		}
		if err := emit(journalLine(&e)); err != nil {
			return last, &emitError{err}
		}
		last = e.Cursor
	}
	return last, sc.Err()
}

// journalLine turns an entry into a Line; an entry that is not from sshd
// running as root keeps only its position.
func journalLine(e *journalEntry) Line {
	l := Line{Pos: Position{Cursor: e.Cursor}}
	if e.UID != "0" || !sshdPrograms[e.Comm] {
		return l
	}
	msg, ok := journalMessage(e.Message)
	if !ok {
		return l
	}
	l.Text = msg
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		l.Time = time.UnixMicro(us)
	}
	l.PID, _ = strconv.Atoi(e.PID)
	return l
}

// journalMessage reads MESSAGE: a string, or an array of bytes when it is
// not valid UTF-8 (null when too large, which sshd's never are).
func journalMessage(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var b []byte
	var ints []int
	if err := json.Unmarshal(raw, &ints); err != nil {
		return "", false
	}
	for _, i := range ints {
		b = append(b, byte(i))
	}
	return string(b), true
}

// tailBuffer keeps the last 4 KiB written to it (journalctl's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
