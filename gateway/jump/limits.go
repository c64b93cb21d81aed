package jump

import (
	"sync"
	"time"
)

// What a person whose session reached one of its project's limits is told.
const (
	maxDurationReason = "maximum session duration reached"
	idleReason        = "idle timeout"
)

// idleCheckEvery is how often a session with an idle timeout looks at its
// last activity: a quarter of the timeout, at most 5 s, so the session ends
// at most that long after the timeout passed.
func idleCheckEvery(idle time.Duration) time.Duration {
	return min(idle/4, 5*time.Second) + time.Millisecond
}

// enforceLimits applies the project's idle timeout and maximum duration,
// each on a goroutine of its own that stop ends (and waits for).
// Deadlines do nothing on a channel, so timers do it.
func (s *session) enforceLimits() (stop func()) {
	maxDuration, idle := s.settings.MaxSessionDuration, s.settings.IdleTimeout
	done := make(chan struct{})
	var wg sync.WaitGroup
	if maxDuration > 0 {
		t := s.clock.NewTimer(maxDuration)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.Stop()
			select {
			case <-t.C():
				s.end(maxDurationReason)
			case <-done:
			}
		}()
	}
	if idle > 0 {
		tick := s.clock.NewTicker(idleCheckEvery(idle))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tick.Stop()
			for {
				select {
				// The tick's own time, not a second reading of the
				// clock: the check is of the moment the tick was due.
				case now := <-tick.C():
					if now.Sub(s.lastActivity()) >= idle {
						s.end(idleReason)
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
