package adminshell

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
)

// sessions replay: a recorded session played back on the admin's terminal.

// DefaultMaxRecordingBytes bounds a replayed recording when the node names
// no bound: the default of recording.max_session_bytes.
const DefaultMaxRecordingBytes = 1 << 30

// errTooLarge: a recording larger than the bound is not copied or played.
var errTooLarge = errors.New("the recording is larger than this node replays (recording.max_session_bytes); fetch it from the node's recordings directory")

// terminalReset undoes what a replayed program may have left switched on:
// the alternate screen, a hidden cursor, colours.
const terminalReset = "\x1b[?1049l\x1b[?25h\x1b[0m"

func (v *invocation) replayCmd() *cobra.Command {
	var speed float64
	var maxWait time.Duration
	var cast bool
	c := &cobra.Command{
		Use:   "replay SESSION [--speed N] [--max-wait D] [--cast]",
		Short: "Play a recorded session back on your terminal, from whichever node holds it",
		Long: `Play a recorded session back on your terminal: what the user saw, with the
recorded pauses (--speed 2 is twice as fast, --speed 0 as fast as possible;
--max-wait 2s shortens long idle stretches). Ctrl-C stops it.

The recording is read from the node that carried the session (over the
cluster's mutual TLS when that is another node) and checked against the
SHA-256 recorded in the cluster when the session closed; a recording that
does not match is refused. --cast writes the verified asciicast file instead
(ssh admin@bastion sessions replay ID --cast > session.cast; asciinema play
session.cast). Every replay is audited.`,
		Args:              exactArgs("SESSION"),
		ValidArgsFunction: v.completeArgs(sessionIDs),
		RunE: func(_ *cobra.Command, args []string) error {
			if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
				return usagef("--speed %v: want 0 (as fast as possible) or more (1 is real time)", speed)
			}
			if maxWait < 0 {
				return usagef("--max-wait %s is negative", maxWait)
			}
			if v.jsonOut || v.quiet {
				return usagef("sessions replay writes a terminal's output: --json and --quiet do not apply (--cast writes the recording)")
			}
			return v.replay(args[0], recording.Player{Speed: speed, MaxWait: maxWait}, cast)
		},
	}
	c.Flags().Float64Var(&speed, "speed", 1, "playback speed: 1 is real time, 2 twice as fast, 0 as fast as possible")
	c.Flags().DurationVar(&maxWait, "max-wait", 0, "cap every pause at this long (0: as recorded)")
	c.Flags().BoolVar(&cast, "cast", false, "write the verified asciicast v2 file instead of playing it")
	return c
}

func (v *invocation) replay(ref string, player recording.Player, cast bool) error {
	st := v.state()
	s, err := findSession(st, ref)
	if err != nil {
		return err
	}
	id := s.ID
	switch {
	case s.Status != raftstore.SessionClosed:
		return fmt.Errorf("session %s is still running: its recording can be replayed once it ends", id)
	case s.RecordingSHA256 == "" && s.RecordingPath == "":
		return fmt.Errorf("session %s was not recorded (its project does not record, or it ran only sftp or forwards)", id)
	case s.RecordingSHA256 == "":
		return fmt.Errorf("session %s has no recorded SHA-256 (the recording failed); it cannot be verified, so it is not replayed", id)
	case s.RecordingPath == "":
		return fmt.Errorf("session %s: the cluster does not know where node %s keeps its recording", id, s.Node)
	case v.sh.recordings == nil:
		return errNoRecordings
	}

	ctx, stop := v.interruptible()
	defer stop()
	f, err := v.fetchVerified(ctx, s)
	fields := map[string]string{"session": s.ID, "user_id": s.UserID, "server_id": s.ServerID, "node": s.Node, "sha256": s.RecordingSHA256}
	if errors.Is(err, errTampered) {
		fields["refused"] = "sha256 mismatch"
		if aerr := v.audit(EventRecordingReplay, fields); aerr != nil {
			v.sh.logger.Error("refused replay not audited", "user", v.actor.Login, "session", s.ID, "err", aerr)
		}
		return fmt.Errorf("session %s (on node %s): %w", id, s.Node, err)
	}
	if err != nil {
		return err
	}
	defer closeTemp(f)
	// Nobody watches a recording unaudited.
	if err := v.audit(EventRecordingReplay, fields); err != nil {
		return fmt.Errorf("replay refused: its audit event could not be written: %w", err)
	}
	if cast {
		_, err := io.Copy(v.raw, f)
		return err
	}
	if v.watch != nil {
		fmt.Fprintf(v.out, "Replaying session %s of %s (Ctrl-C stops)...\n", s.ID, clean(userLogin(st, s.UserID)))
	}
	// What the recorded person's programs printed reaches the admin's
	// terminal: it draws, but never acts (clipboard, hyperlinks, queries
	// answered into the admin's input). --cast stays byte-exact.
	err = player.Play(ctx, f, recording.TerminalSafe(v.raw))
	_, _ = io.WriteString(v.raw, terminalReset)
	switch {
	case ctx.Err() != nil && v.ctx.Err() == nil:
		fmt.Fprintf(v.out, "\nreplay of session %s stopped\n", s.ID)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(v.out, "\nend of session %s\n", s.ID)
	return nil
}

// fetchVerified copies the recording into a temporary file while hashing
// it, and returns that file, rewound, only if it hashes to what raft holds.
// Playing from the copy means what is shown is what was checked. A recording
// larger than the node's bound is refused after that many bytes, so a
// planted file cannot fill the temporary directory.
func (v *invocation) fetchVerified(ctx context.Context, s *raftstore.Session) (*os.File, error) {
	rc, err := v.sh.recordings.Open(ctx, s)
	if errors.Is(err, recording.ErrDigestMismatch) {
		v.sh.logger.Warn("no copy of the recording matches its recorded hash", "session", s.ID, "err", err)
		return nil, errTampered
	}
	if err != nil {
		return nil, fmt.Errorf("read the recording of session %s from node %s: %w", s.ID, s.Node, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "rampart-replay-*.cast")
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	h := sha256.New()
	limit := v.sh.maxRecording
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, limit+1))
	if err != nil {
		closeTemp(f)
		return nil, fmt.Errorf("read the recording of session %s from node %s: %w", s.ID, s.Node, err)
	}
	if n > limit {
		closeTemp(f)
		return nil, fmt.Errorf("session %s (on node %s): %w", s.ID, s.Node, errTooLarge)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.RecordingSHA256 {
		closeTemp(f)
		v.sh.logger.Warn("recording does not match its recorded hash", "session", s.ID, "node", s.Node, "want", s.RecordingSHA256, "got", got)
		return nil, errTampered
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		closeTemp(f)
		return nil, fmt.Errorf("replay: %w", err)
	}
	return f, nil
}

func closeTemp(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}
