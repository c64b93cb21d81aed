package frontdoor

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// preauthLimiter bounds connections that have not finished authenticating,
// per source and in total, so that a flood of half-open connections cannot
// exhaust the node; and device flows per source, counted until their polling
// of the IdP has stopped, which may be after their connection closed.
type preauthLimiter struct {
	maxTotal, maxPerSource, maxFlowsPerSource int

	mu        sync.Mutex
	total     int
	perSource map[string]int
	flows     map[string]int
}

func newPreauthLimiter(maxTotal, maxPerSource, maxFlowsPerSource int) *preauthLimiter {
	return &preauthLimiter{maxTotal: maxTotal, maxPerSource: maxPerSource, maxFlowsPerSource: maxFlowsPerSource,
		perSource: map[string]int{}, flows: map[string]int{}}
}

func (l *preauthLimiter) acquire(src string) bool {
	ok, _ := l.acquireWhy(src)
	return ok
}

// acquireWhy is acquire that, when it refuses, says which limit did
// (limitPreauthTotal or limitPreauthPerSource).
func (l *preauthLimiter) acquireWhy(src string) (ok bool, limit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.maxTotal:
		return false, limitPreauthTotal
	case l.perSource[src] >= l.maxPerSource:
		return false, limitPreauthPerSource
	}
	l.total++
	l.perSource[src]++
	return true, ""
}

func (l *preauthLimiter) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perSource[src]--; l.perSource[src] <= 0 {
		delete(l.perSource, src)
	}
}

func (l *preauthLimiter) acquireFlow(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flows[src] >= l.maxFlowsPerSource {
		return false
	}
	l.flows[src]++
	return true
}

func (l *preauthLimiter) releaseFlow(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flows[src]--; l.flows[src] <= 0 {
		delete(l.flows, src)
	}
}

// trackedConn releases its pre-auth slot once: when authentication succeeds
// or when the connection closes, whichever comes first. gone is closed when
// the connection is over: closed (x/crypto closes it as soon as its reader
// sees the client leave, even while an authentication callback still runs)
// or failed on a read.
//
// Until authentication succeeds its deadline is the front door's alone:
// gliderlabs sets the deadline on every read and write (to none, as no
// IdleTimeout or MaxTimeout is configured), which would lift the handshake
// deadline at the server's first write. Its SetDeadline calls are ignored
// until then; the front door sets deadlines with setDeadline.
type trackedConn struct {
	net.Conn
	once     sync.Once
	release  func()
	goneOnce sync.Once
	gone     chan struct{}
	authed   atomic.Bool
}

func newTrackedConn(nc net.Conn, release func()) *trackedConn {
	return &trackedConn{Conn: nc, release: release, gone: make(chan struct{})}
}

func (c *trackedConn) done() { c.once.Do(c.release) }

// authenticated releases the slot, lifts the front door's deadline and
// hands deadlines over to whoever holds the connection next.
func (c *trackedConn) authenticated() {
	c.done()
	c.authed.Store(true)
	_ = c.Conn.SetDeadline(time.Time{})
}

func (c *trackedConn) setDeadline(t time.Time) { _ = c.Conn.SetDeadline(t) }

func (c *trackedConn) SetDeadline(t time.Time) error {
	if !c.authed.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if !c.authed.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if !c.authed.Load() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) markGone() { c.goneOnce.Do(func() { close(c.gone) }) }

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.markGone()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.done()
	c.markGone()
	return c.Conn.Close()
}

// sourceOf is the unit the pre-auth limits count: an IPv4 address, or an
// IPv6 /64 (one host commonly holds a whole /64, so counting its addresses
// would let it take every slot).
func sourceOf(addr net.Addr) string {
	var ip net.IP
	if ta, ok := addr.(*net.TCPAddr); ok {
		ip = ta.IP
	} else if h, _, err := net.SplitHostPort(addr.String()); err == nil {
		ip = net.ParseIP(h)
		if ip == nil {
			return h
		}
	} else {
		return addr.String()
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// logLimiter rate-limits one kind of log line, so that a flood of refused
// connections cannot flood the log: lines beyond the rate are dropped, and
// the next line written says how many were.
type logLimiter struct {
	mu         sync.Mutex
	lim        *rate.Limiter
	suppressed int
}

// Refusal log lines: a burst of 5, then one a second.
const (
	refusalLogEvery = time.Second
	refusalLogBurst = 5
)

func newLogLimiter(every time.Duration, burst int) *logLimiter {
	return &logLimiter{lim: rate.NewLimiter(rate.Every(every), burst)}
}

func (l *logLimiter) warn(logger *slog.Logger, now time.Time, msg string, args ...any) {
	l.mu.Lock()
	if !l.lim.AllowN(now, 1) {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	logger.Warn(msg, args...)
}
