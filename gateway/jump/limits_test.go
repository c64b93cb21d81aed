package jump

import (
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// fakeClock is a clock that only moves when advance is called. Its timers
// and tickers deliver on unbuffered channels, and advance returns only
// once the goroutine that took a delivery is done with it, so a test that
// drives it sees every consequence of the time it reached.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      chan time.Time
	when   time.Time
	period time.Duration // 0: a timer, which fires once
	fired  bool

	stopOnce sync.Once
	stopped  chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) add(d, period time.Duration) *fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time), when: f.now.Add(d), period: period, stopped: make(chan struct{})}
	f.timers = append(f.timers, t)
	return t
}

func (f *fakeClock) NewTimer(d time.Duration) timer   { return fakeTimerOnce{f.add(d, 0)} }
func (f *fakeClock) NewTicker(d time.Duration) ticker { return fakeTickerOf{f.add(d, d)} }

func (t *fakeTimer) stop() { t.stopOnce.Do(func() { close(t.stopped) }) }

func (t *fakeTimer) isStopped() bool {
	select {
	case <-t.stopped:
		return true
	default:
		return false
	}
}

type fakeTimerOnce struct{ t *fakeTimer }

func (t fakeTimerOnce) C() <-chan time.Time { return t.t.c }
func (t fakeTimerOnce) Stop() bool          { t.t.stop(); return true }

type fakeTickerOf struct{ t *fakeTimer }

func (t fakeTickerOf) C() <-chan time.Time { return t.t.c }
func (t fakeTickerOf) Stop()               { t.t.stop() }

// advanceTo moves the clock to at, firing what falls due on the way in
// order, each at its own time.
func (f *fakeClock) advanceTo(at time.Time) {
	for {
		f.mu.Lock()
		var next *fakeTimer
		for _, t := range f.timers {
			if t.fired || t.isStopped() || t.when.After(at) {
				continue
			}
			if next == nil || t.when.Before(next.when) {
				next = t
			}
		}
		if next == nil {
			f.now = at
			f.mu.Unlock()
			return
		}
		f.now = next.when
		due := next.when
		if next.period > 0 {
			next.when = next.when.Add(next.period)
		} else {
			next.fired = true
		}
		f.mu.Unlock()
		next.deliver(due)
	}
}

// deliver hands t's tick to its goroutine and waits until that goroutine
// is done with it: a timer's goroutine stops it once it has acted; a
// ticker's takes a second tick of the same time only once it is back
// waiting (checking the same moment twice changes nothing), or has
// stopped it.
func (t *fakeTimer) deliver(due time.Time) {
	select {
	case t.c <- due:
	case <-t.stopped:
		return
	}
	if t.period == 0 {
		<-t.stopped
		return
	}
	select {
	case t.c <- due:
	case <-t.stopped:
	}
}

// limitsSession is a session under clk whose ending is noted, with the
// clock's time, instead of shutting a bridge down.
func limitsSession(clk *fakeClock, idle, maxDuration time.Duration) (*session, func() (reasons []string, at []time.Time)) {
	s := &session{id: "s-test", project: "web", clock: clk, logger: slog.New(slog.DiscardHandler),
		settings: raftstore.ProjectSettings{IdleTimeout: idle, MaxSessionDuration: maxDuration}}
	var mu sync.Mutex
	var msgs []string
	var ats []time.Time
	s.shutdown = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		msgs = append(msgs, msg)
		ats = append(ats, clk.Now())
	}
	s.touch()
	return s, func() ([]string, []time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(msgs), slices.Clone(ats)
	}
}

// The idle timeout and the maximum duration end a session when, and only
// when, they are reached, driven by a fake clock.
func TestEnforceLimits(t *testing.T) {
	every := func(step, until time.Duration) []time.Duration {
		var out []time.Duration
		for d := step; d <= until; d += step {
			out = append(out, d)
		}
		return out
	}
	const ms = time.Millisecond
	tests := []struct {
		name        string
		idle, max   time.Duration
		activity    []time.Duration // when the person sends something, from the start
		runFor      time.Duration
		want        string // the reason; "" for a session that goes on
		wantAt      time.Duration
		wantStopped bool // nothing left running once it ended
	}{
		{name: "ok/no-limits", runFor: 1000 * time.Hour},
		{name: "ok/active-within-idle", idle: 10 * time.Second, activity: every(5*time.Second, time.Minute), runFor: time.Minute},
		{name: "ok/typing-just-inside-idle", idle: 10 * time.Second, activity: every(9*time.Second, time.Minute), runFor: time.Minute},
		{name: "ok/below-max", max: time.Hour, runFor: time.Hour - ms},
		// Checked every min(idle/4, 5 s) + 1 ms: 2.501 s here, so the 4th
		// check (10.004 s) is the first at least 10 s after the start.
		{name: "fail/idle", idle: 10 * time.Second, runFor: time.Minute, want: idleReason, wantAt: 4 * 2501 * ms},
		// Last activity at 7 s: the first check at or after 17 s is the
		// 7th, at 17.507 s.
		{name: "fail/idle-after-activity", idle: 10 * time.Second, activity: []time.Duration{3 * time.Second, 7 * time.Second}, runFor: time.Minute, want: idleReason, wantAt: 7 * 2501 * ms},
		// A long timeout is checked every 5.001 s: the 720th check is the
		// first at or after an hour.
		{name: "fail/idle-long-timeout", idle: time.Hour, runFor: 2 * time.Hour, want: idleReason, wantAt: 720 * 5001 * ms},
		{name: "fail/max-duration-while-active", max: time.Minute, activity: every(5*time.Second, 2*time.Minute), runFor: 2 * time.Minute, want: maxDurationReason, wantAt: time.Minute},
		{name: "fail/idle-before-max", idle: 10 * time.Second, max: time.Minute, runFor: 2 * time.Minute, want: idleReason, wantAt: 4 * 2501 * ms},
		{name: "fail/max-before-idle", idle: 30 * time.Minute, max: time.Hour, activity: every(10*time.Minute, 2*time.Hour), runFor: 2 * time.Hour, want: maxDurationReason, wantAt: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			start := clk.Now()
			s, ended := limitsSession(clk, tc.idle, tc.max)
			stop := s.enforceLimits()
			for _, at := range tc.activity {
				clk.advanceTo(start.Add(at))
				s.touch()
			}
			clk.advanceTo(start.Add(tc.runFor))
			stop()

			msgs, ats := ended()
			if tc.want == "" {
				if len(msgs) != 0 || s.endReason() != "closed" {
					t.Fatalf("ended: %q at %v (reason %q)", msgs, ats, s.endReason())
				}
				return
			}
			if got := s.endReason(); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
			if len(msgs) == 0 || msgs[0] != "Rampart: session ended: "+tc.want {
				t.Fatalf("person told %q", msgs)
			}
			if got := ats[0].Sub(start); got != tc.wantAt {
				t.Fatalf("ended after %v, want %v", got, tc.wantAt)
			}
		})
	}
}

// stop ends the limits' goroutines: a session that closed before its
// limits is not ended by them afterwards.
func TestEnforceLimitsStop(t *testing.T) {
	clk := newFakeClock()
	s, ended := limitsSession(clk, time.Second, time.Minute)
	stop := s.enforceLimits()
	stop()
	clk.advanceTo(clk.Now().Add(time.Hour))
	if msgs, _ := ended(); len(msgs) != 0 {
		t.Fatalf("ended after stop: %q", msgs)
	}
}

// The first reason a session is ended for is the one recorded.
func TestSessionEndFirstReasonWins(t *testing.T) {
	s, ended := limitsSession(newFakeClock(), 0, 0)
	s.end(idleReason)
	s.end(killedReason)
	if got := s.endReason(); got != idleReason {
		t.Fatalf("reason %q, want %q", got, idleReason)
	}
	if msgs, _ := ended(); len(msgs) != 2 {
		t.Fatalf("shutdown called %d times, want each end passed on (the bridge ignores the second)", len(msgs))
	}
}
