package frontdoor

import (
	"net"
	"sync"
)

// preauthLimiter bounds connections that have not finished authenticating,
// per source address and in total, so that a flood of half-open connections
// (each may legitimately wait minutes for a browser approval) cannot exhaust
// the node.
type preauthLimiter struct {
	maxTotal, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[string]int
}

func newPreauthLimiter(maxTotal, maxPerIP int) *preauthLimiter {
	return &preauthLimiter{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: map[string]int{}}
}

func (l *preauthLimiter) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.perIP[ip] >= l.maxPerIP {
		return false
	}
	l.total++
	l.perIP[ip]++
	return true
}

func (l *preauthLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// trackedConn releases its pre-auth slot once: when authentication succeeds
// or when the connection closes, whichever comes first.
type trackedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *trackedConn) done() { c.once.Do(c.release) }

func (c *trackedConn) Close() error {
	c.done()
	return c.Conn.Close()
}

func hostOf(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}
