package httpapi

import (
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Timeouts bound how long one connection may take over each part of an
// exchange, so that a client sending a body (or reading an answer) a byte
// at a time cannot hold a connection and its goroutine for ever.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, headers and body.
	Read time.Duration
	// Write bounds the answer, from the end of the request's headers. Long
	// polls and downloads extend it for themselves (holdFor).
	Write time.Duration
	// Idle bounds the wait for the next request on a kept-alive connection.
	Idle time.Duration
}

// DefaultTimeouts are the API's timeouts. Every request body the API takes
// is at most maxBody (1 MiB), which 30 s carries over any working link.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// HTTPServer returns the http.Server that serves s with t's timeouts (zero
// fields take DefaultTimeouts'); errLog receives net/http's own messages.
// The caller serves it with ServeTLS or Serve.
func (s *Server) HTTPServer(tlsConfig *tls.Config, t Timeouts, errLog *log.Logger) *http.Server {
	def := DefaultTimeouts
	for _, f := range []struct{ v, d *time.Duration }{{&t.ReadHeader, &def.ReadHeader}, {&t.Read, &def.Read}, {&t.Write, &def.Write}, {&t.Idle, &def.Idle}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	s.timeouts = t
	return &http.Server{
		Handler: s, TLSConfig: tlsConfig, ErrorLog: errLog,
		ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
	}
}

// holdFor lets a request that is answered late on purpose (a long poll, a
// large download) outlive the server's read and write timeouts: it moves
// this connection's deadlines to d plus the write timeout from now. The
// read deadline moves too: while the handler runs, net/http reads ahead on
// the connection to notice a client that hangs up, and that read ending at
// the request's read deadline would cancel the request.
func (s *Server) holdFor(w http.ResponseWriter, d time.Duration) {
	if s.timeouts.Write == 0 {
		return // not served through HTTPServer (tests with httptest)
	}
	rc := http.NewResponseController(w)
	deadline := s.now().Add(d + s.timeouts.Write)
	// ErrNotSupported from a ResponseWriter that is not a connection's
	// (a wrapper in tests): nothing to move.
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
}

// downloadHold is how long a file download (an agent binary, a recording
// to another node) may take: tens of megabytes over a slow link.
const downloadHold = 15 * time.Minute

// blockingHold is the longest a blocking query asked to wait wait may hold
// (raftstore.BlockingQuery: the default when 0, the cap, then up to a
// sixteenth of jitter), with room to spare.
func blockingHold(wait time.Duration) time.Duration {
	if wait <= 0 {
		wait = raftstore.DefaultBlockingWait
	}
	wait = min(wait, raftstore.MaxBlockingWait)
	return wait + wait/8
}

// Per-source limits on what anyone may call without credentials, and on
// failed authentications. A source is the client's IP address.
const (
	// Enrollment costs a raft write (the token use) and signature checks:
	// a fleet behind one NAT address enrolling at boot stays well inside.
	enrollEvery = 200 * time.Millisecond
	enrollBurst = 100
	// Joins are rare: a handful of nodes, once each.
	joinEvery = 5 * time.Second
	joinBurst = 10
	// authFailEvery and authFailBurst bound the failed authentications a
	// source may make (and the log lines they cause); past them the source
	// is answered 429 until its bucket refills.
	authFailEvery = time.Second
	authFailBurst = 20
	// DefaultTokenFailEvery and DefaultTokenFailBurst bound the refused
	// requests (a scope it lacks, a validation error, a missing object) a
	// service token may make before it is answered 429; a tool in a retry
	// loop on a bad request stops costing the cluster work (SetTokenLimit).
	DefaultTokenFailEvery = time.Second
	DefaultTokenFailBurst = 30
	// maxSources bounds each limiter's table; past it, sources whose bucket
	// has refilled are forgotten.
	maxSources = 4096
)

// sourceLimiter is a token bucket per client address.
type sourceLimiter struct {
	every time.Duration
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newSourceLimiter(every time.Duration, burst int) *sourceLimiter {
	return &sourceLimiter{every: every, burst: burst, m: map[string]*rate.Limiter{}}
}

func (l *sourceLimiter) get(src string, now time.Time) *rate.Limiter {
	lim, ok := l.m[src]
	if ok {
		return lim
	}
	if len(l.m) >= maxSources {
		for k, v := range l.m {
			if v.TokensAt(now) >= float64(l.burst) {
				delete(l.m, k) // full again: forgetting it changes nothing
			}
		}
	}
	lim = rate.NewLimiter(rate.Every(l.every), l.burst)
	l.m[src] = lim
	return lim
}

// allow takes one token of src's bucket, if there is one.
func (l *sourceLimiter) allow(src string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.get(src, now).AllowN(now, 1)
}

// exhausted reports whether src's bucket is empty, taking nothing.
func (l *sourceLimiter) exhausted(src string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[src]
	return ok && lim.TokensAt(now) < 1
}

// source is the client's address, the key of the per-source limits.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited wraps an endpoint open to anyone with a per-source rate limit;
// endpoint names it in the refusals' metric.
func (s *Server) limited(endpoint string, l *sourceLimiter, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !l.allow(source(r), s.now()) {
			s.metrics.Refusals.WithLabelValues(endpoint, "rate_limited").Inc()
			w.Header().Set("Retry-After", "5")
			s.writeError(w, r, Errorf(http.StatusTooManyRequests, "too many requests from your address; try again shortly"))
			return
		}
		h(w, r)
	}
}

// authFailures counts refused credentials and limits them per source.
type authFailures struct {
	count      atomic.Uint64
	suppressed atomic.Uint64
	lim        *sourceLimiter
}

// AuthFailures is how many requests this server refused for their
// credentials (missing, unknown, expired, or of the wrong kind) since it
// started, those answered 429 for too many failures included.
func (s *Server) AuthFailures() uint64 { return s.authFail.count.Load() }

// authKey is whom failed authentications are counted against: the
// identity of a client certificate the cluster CA signed (certificates
// cannot be guessed, so its failures are its own, and an agent is never
// locked out by another process on its machine sending requests without
// one, nor by a dead certificate used from there), else the source address.
func authKey(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if role, id, ok := api.Identity(r.TLS.VerifiedChains[0][0]); ok {
			return "cert " + role + "/" + id
		}
	}
	return source(r)
}

// authTooMany answers 429 when r's authKey has used up its failed
// authentications; it reports whether it did.
func (s *Server) authTooMany(w http.ResponseWriter, r *http.Request) bool {
	if !s.authFail.lim.exhausted(authKey(r), s.now()) {
		return false
	}
	s.authFail.count.Add(1)
	s.authFail.suppressed.Add(1)
	s.metrics.AuthFailures.WithLabelValues("429").Inc()
	w.Header().Set("Retry-After", "5")
	s.writeError(w, r, Errorf(http.StatusTooManyRequests, "too many failed authentications from your address; try again shortly"))
	return true
}

// authFailed counts a refused credential, logs it (at most at the
// per-source rate; the count of lines left out goes with the next one) and
// answers err. why is for the log only.
func (s *Server) authFailed(w http.ResponseWriter, r *http.Request, why string, err error) {
	s.authFail.count.Add(1)
	s.metrics.authFailed(err)
	if s.authFail.lim.allow(authKey(r), s.now()) {
		s.logger.Warn("refused API credentials", "reason", why, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
			"failures_total", s.authFail.count.Load(), "not_logged", s.authFail.suppressed.Swap(0))
	} else {
		s.authFail.suppressed.Add(1)
	}
	s.writeError(w, r, err)
}
