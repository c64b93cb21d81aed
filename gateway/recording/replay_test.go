package recording

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sampleCast = `{"version":2,"width":80,"height":24,"timestamp":1795651170,"env":{"TERM":"xterm"}}
[0.500000, "o", "$ "]
[1.000000, "i", "ls\r"]
[1.250000, "o", "ls\r\n"]
[1.250000, "r", "100x30"]

[4.250000, "o", "a.txt  b.txt\r\n"]
[4.750000, "o", "$ "]
`

func TestReplay(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		cast      string
		player    Player
		wantOut   string
		wantSleep []time.Duration
		wantErr   error
	}{
		{
			name:    "ok/speed-0-no-pauses",
			cast:    sampleCast,
			wantOut: "$ ls\r\na.txt  b.txt\r\n$ ",
		},
		{
			name:      "ok/speed-1",
			cast:      sampleCast,
			player:    Player{Speed: 1},
			wantOut:   "$ ls\r\na.txt  b.txt\r\n$ ",
			wantSleep: []time.Duration{ms(500), ms(750), ms(3000), ms(500)},
		},
		{
			name:      "ok/speed-2-halves-pauses",
			cast:      sampleCast,
			player:    Player{Speed: 2},
			wantOut:   "$ ls\r\na.txt  b.txt\r\n$ ",
			wantSleep: []time.Duration{ms(250), ms(375), ms(1500), ms(250)},
		},
		{
			name:      "ok/max-wait-caps-idle",
			cast:      sampleCast,
			player:    Player{Speed: 1, MaxWait: time.Second},
			wantOut:   "$ ls\r\na.txt  b.txt\r\n$ ",
			wantSleep: []time.Duration{ms(500), ms(750), ms(1000), ms(500)},
		},
		{
			name:    "ok/header-only",
			cast:    `{"version":2,"width":80,"height":24}` + "\n",
			wantOut: "",
		},
		{
			name:    "fail/cancelled",
			ctx:     cancelled,
			cast:    sampleCast,
			wantErr: context.Canceled,
		},
		{name: "fail/empty", cast: "", wantErr: ErrBadRecording},
		{name: "fail/version-1", cast: `{"version":1,"width":80,"height":24,"stdout":[]}`, wantErr: ErrBadRecording},
		{name: "fail/not-json", cast: "hello\n", wantErr: ErrBadRecording},
		{name: "fail/negative-speed", cast: sampleCast, player: Player{Speed: -1}},
		{
			name:    "fail/bad-event-after-good",
			cast:    `{"version":2,"width":80,"height":24}` + "\n" + `[0.1, "o", "ok"]` + "\n" + `[0.2, "o"]` + "\n",
			wantOut: "ok",
			wantErr: ErrBadRecording,
		},
		{
			name:    "fail/truncated-line",
			cast:    `{"version":2,"width":80,"height":24}` + "\n" + `[0.1, "o", "ok"]` + "\n" + `[0.2, "o", "cut`,
			wantOut: "ok",
			wantErr: ErrBadRecording,
		},
		{
			name:    "fail/negative-time",
			cast:    `{"version":2,"width":80,"height":24}` + "\n" + `[-1, "o", "x"]` + "\n",
			wantErr: ErrBadRecording,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var slept []time.Duration
			p := tc.player
			p.Sleep = func(ctx context.Context, d time.Duration) error {
				slept = append(slept, d)
				return ctx.Err()
			}
			c := tc.ctx
			if c == nil {
				c = ctx
			}
			var out bytes.Buffer
			err := p.Play(c, strings.NewReader(tc.cast), &out)
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Play = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && strings.HasPrefix(tc.name, "ok/") && err != nil:
				t.Fatalf("Play = %v", err)
			case strings.HasPrefix(tc.name, "fail/") && err == nil:
				t.Fatal("Play succeeded")
			}
			if out.String() != tc.wantOut {
				t.Errorf("output %q, want %q", out.String(), tc.wantOut)
			}
			if !reflect.DeepEqual(slept, tc.wantSleep) {
				t.Errorf("pauses %v, want %v", slept, tc.wantSleep)
			}
		})
	}
}

// TestRecordThenReplay replays what a Recorder wrote, at speed 0 through the
// package's Replay, and checks every output byte arrives in order.
func TestRecordThenReplay(t *testing.T) {
	clk := newClock()
	r, err := New(Config{Dir: t.TempDir(), SessionID: "s-1", RecordInput: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i, chunk := range []string{"$ ", "l", "s\r\n", "r\xc3", "\xa9sum\xc3\xa9.txt\r\n", strings.Repeat("x", 3*maxEventData), "$ "} {
		clk.advance(ms(100 * i))
		if err := r.Output([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
		if err := r.Input([]byte("k")); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := r.Resize(132, 43); err != nil {
				t.Fatal(err)
			}
		}
		want.WriteString(chunk)
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if err := Replay(context.Background(), f, &out, 0); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("replayed %d bytes, recorded %d", out.Len(), want.Len())
	}
}
