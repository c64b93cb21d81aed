package recording

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Header is the first line of an asciicast v2 file.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Title     string            `json:"title,omitempty"`
	// Command is the exec request's command of a session without a
	// terminal (asciicast v2's "command").
	Command string `json:"command,omitempty"`
}

// Event is one event line.
type Event struct {
	Time time.Duration // since the start of the recording
	Type EventType
	Data string
}

// maxLine bounds one line a Reader accepts. Rampart writes events of at most
// maxEventData raw bytes (6× that escaped); other writers may go further.
const maxLine = 8 << 20

// maxEventSeconds bounds an event's time (about 31 years), so that converting
// it to a Duration cannot overflow.
const maxEventSeconds = 1e9

// Reader reads an asciicast v2 recording event by event.
type Reader struct {
	sc     *bufio.Scanner
	header Header
	line   int
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	rd := &Reader{sc: sc}
	line, err := rd.nextLine()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty", ErrBadRecording)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(line, &rd.header); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBadRecording, err)
	}
	if rd.header.Version != 2 {
		return nil, fmt.Errorf("%w: version %d", ErrBadRecording, rd.header.Version)
	}
	return rd, nil
}

// Header returns the recording's header.
func (rd *Reader) Header() Header { return rd.header }

// Next returns the next event, or io.EOF after the last.
func (rd *Reader) Next() (Event, error) {
	line, err := rd.nextLine()
	if err != nil {
		return Event{}, err
	}
	var fields []json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return Event{}, rd.bad(err)
	}
	if len(fields) != 3 {
		return Event{}, rd.bad(fmt.Errorf("%d fields, want 3", len(fields)))
	}
	var (
		secs float64
		ev   Event
	)
	if err := json.Unmarshal(fields[0], &secs); err != nil {
		return Event{}, rd.bad(err)
	}
	if secs < 0 || secs > maxEventSeconds {
		return Event{}, rd.bad(fmt.Errorf("time %v out of range", secs))
	}
	if err := json.Unmarshal(fields[1], &ev.Type); err != nil {
		return Event{}, rd.bad(err)
	}
	if err := json.Unmarshal(fields[2], &ev.Data); err != nil {
		return Event{}, rd.bad(err)
	}
	ev.Time = time.Duration(math.Round(secs * float64(time.Second)))
	return ev, nil
}

// nextLine returns the next non-blank line.
func (rd *Reader) nextLine() ([]byte, error) {
	for rd.sc.Scan() {
		rd.line++
		if line := bytes.TrimSpace(rd.sc.Bytes()); len(line) > 0 {
			return line, nil
		}
	}
	if err := rd.sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrBadRecording, rd.line+1, err)
	}
	return nil, io.EOF
}

func (rd *Reader) bad(err error) error {
	return fmt.Errorf("%w: line %d: %w", ErrBadRecording, rd.line, err)
}

// Player plays recordings back.
type Player struct {
	// Speed divides every pause: 2 plays twice as fast, 0 writes everything
	// at once.
	Speed float64
	// MaxWait, if positive, caps each pause (before Speed applies), like
	// asciinema's --idle-time-limit: an eight-hour session with long idle
	// stretches replays in minutes.
	MaxWait time.Duration
	// Sleep waits d or until ctx ends; nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Replay writes the output events of the recording in r to w, pausing
// between them as recorded divided by speed (0: no pauses).
func Replay(ctx context.Context, r io.Reader, w io.Writer, speed float64) error {
	return Player{Speed: speed}.Play(ctx, r, w)
}

// Play writes the output events of the recording in r to w, in order and
// with the recorded pauses. Input and resize events are skipped; pauses are
// measured between output events, as asciinema does.
func (p Player) Play(ctx context.Context, r io.Reader, w io.Writer) error {
	if p.Speed < 0 || math.IsNaN(p.Speed) {
		return fmt.Errorf("replay: speed %v: want 0 (no pauses) or more", p.Speed)
	}
	sleep := p.Sleep
	if sleep == nil {
		sleep = sleepContext
	}
	rd, err := NewReader(r)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	var prev time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if ev.Type != EventOutput {
			continue
		}
		pause := ev.Time - prev
		prev = ev.Time
		if p.MaxWait > 0 && pause > p.MaxWait {
			pause = p.MaxWait
		}
		if p.Speed > 0 && pause > 0 {
			if d := time.Duration(float64(pause) / p.Speed); d > 0 {
				if err := sleep(ctx, d); err != nil {
					return err
				}
			}
		}
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
