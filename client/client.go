package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// ErrNoAddress: the client knows no address of the cluster.
var ErrNoAddress = errors.New("no cluster address known")

// defaultTimeout bounds a request, answer included, unless WithTimeout says
// otherwise.
const defaultTimeout = 30 * time.Second

// Client calls the cluster's HTTPS API at a list of node addresses. It
// starts each call at the node it is at and moves on to the next after a
// failure, so that every later call (of any method) starts where the
// cluster last answered. Whether one call tries further nodes is each
// method's rule, written on it. Safe for concurrent use.
type Client struct {
	addrs     func() []string
	http      *http.Client
	pin       string
	token     string
	machineID string

	// next is the index (modulo the list) of the node the next call asks.
	next atomic.Uint64

	// generation, when set, is the generation of the client certificate;
	// gen is the one the pooled connections were made with.
	generation func() uint64
	genMu      sync.Mutex
	gen        uint64
}

// Option configures a Client.
type Option func(*options)

type options struct {
	base       *tls.Config
	pin        string
	pinSet     bool
	roots      *x509.CertPool
	clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	token      string
	machineID  string
	timeout    time.Duration
	follow     func() []string
	generation func() uint64
}

// WithPin trusts a node only if its chain ends in the CA that pin
// ("sha256:<hex>", as tokens carry it) names, and only a node certificate
// of that CA (PinnedTLS): how an enrolling agent or a joining node trusts
// the cluster before it has the CA. Enroll and Join also check that the CA
// in the answer is that one.
func WithPin(pin string) Option { return func(o *options) { o.pin, o.pinSet = pin, true } }

// WithRootCAs trusts the nodes' certificates that chain to pool (the
// cluster CA).
func WithRootCAs(pool *x509.CertPool) Option { return func(o *options) { o.roots = pool } }

// WithTLSConfig starts from a copy of cfg instead of an empty configuration
// (TLS 1.2 at least); the other options apply on top of it.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.base = cfg } }

// WithClientCertificate presents the certificate get returns at each TLS
// handshake: a renewed certificate is used from the next handshake on.
func WithClientCertificate(get func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) Option {
	return func(o *options) { o.clientCert = get }
}

// WithCredentialGeneration makes the client close its pooled connections
// before a request whenever generation has changed since the last one: the
// client certificate was renewed, and the cluster refuses the old one at
// once.
func WithCredentialGeneration(generation func() uint64) Option {
	return func(o *options) { o.generation = generation }
}

// WithToken sends "Authorization: Bearer token" (a service token).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithMachineID sends the agent's machine id (api.MachineIDHeader), which
// the cluster checks on every agent call but enrollment.
func WithMachineID(id string) Option { return func(o *options) { o.machineID = id } }

// WithTimeout bounds each request, answer included (30s when not given; a
// long poll needs its wait and more).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithAddrs makes the client ask list for the nodes' addresses at each
// call, in place of the list New was given, so that it follows the nodes a
// caller learns of.
func WithAddrs(list func() []string) Option { return func(o *options) { o.follow = list } }

// New returns a client of the cluster at addrs: base URLs
// ("https://10.0.0.11:8443") or bare host:port addresses, which mean https.
// Without WithPin, WithRootCAs or WithTLSConfig it trusts the system's
// roots.
func New(addrs []string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// A pin asked for is a pin enforced: an empty or malformed one refuses
	// every node, never falls back to the system's roots.
	if o.pinSet && !validPin(o.pin) {
		return nil, fmt.Errorf("client: CA pin %q is not sha256:<64 hex digits>", o.pin)
	}
	if o.pin != "" && (o.roots != nil || o.base != nil) {
		return nil, errors.New("client: a pin is the only trust: give no root CAs or TLS configuration with it")
	}
	for _, a := range addrs {
		if _, err := baseURL(a); err != nil {
			return nil, err
		}
	}
	var cfg *tls.Config
	switch {
	case o.pin != "":
		cfg = PinnedTLS(o.pin)
	case o.base != nil:
		cfg = o.base.Clone()
	default:
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.roots != nil {
		cfg.RootCAs = o.roots
	}
	if o.clientCert != nil {
		cfg.Certificates, cfg.GetClientCertificate = nil, o.clientCert
	}
	if o.timeout == 0 {
		o.timeout = defaultTimeout
	}
	list := o.follow
	if list == nil {
		fixed := append([]string(nil), addrs...)
		list = func() []string { return fixed }
	}
	c := &Client{addrs: list, pin: o.pin, token: o.token, machineID: o.machineID, generation: o.generation,
		// One connection per node is kept: a client asks a node one thing
		// at a time. Idle ones are dropped after a while, so that a renewed
		// client certificate is soon the one in use.
		http: &http.Client{Timeout: o.timeout, Transport: &http.Transport{TLSClientConfig: cfg,
			MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second},
			// The API never redirects; following one would re-send a
			// token or body to wherever the answer points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect }}}
	if c.generation != nil {
		c.gen = c.generation()
	}
	return c, nil
}

// errRedirect refuses every redirect.
var errRedirect = errors.New("client: the node answered with a redirect, which the cluster API never sends")

// validPin reports whether pin has the form tokens carry: sha256:<64 hex>.
func validPin(pin string) bool {
	hexPart, ok := strings.CutPrefix(pin, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

// Addrs returns the nodes' addresses as the client knows them now.
func (c *Client) Addrs() []string { return c.addrs() }

// Current returns the address the next call starts at ("" when none is
// known).
func (c *Client) Current() string {
	addrs := c.addrs()
	if len(addrs) == 0 {
		return ""
	}
	return addrs[c.next.Load()%uint64(len(addrs))]
}

// CloseIdleConnections closes the client's pooled connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Error is an answer of the cluster other than 2xx.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the server's machine-readable reason, when it sends one.
	Code string
	// Message is the server's message, meant for people (or the start of
	// the body when it is not the API's JSON error).
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// StatusOf returns the HTTP status of the first *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// refused reports whether err is the cluster's refusal (4xx), which
// another node would answer the same way.
func refused(err error) bool {
	s := StatusOf(err)
	return s >= 400 && s < 500
}

// request is one API call and its rule over the nodes.
type request struct {
	method, path string
	query        url.Values
	in, out      any
	// each tries every node once, from the current one; otherwise only
	// the current one is asked (callers that retry themselves).
	each bool
	// stopAtRefusal ends the round at a 4xx answer.
	stopAtRefusal bool
	// raw, when set, receives the 2xx response, body open, instead of out.
	raw **http.Response
}

// call runs r as its rule says. Each node's error names the node; a round
// that failed on several nodes returns their errors joined, in order; one
// stopped by a refusal returns that refusal alone.
func (c *Client) call(ctx context.Context, r request) error {
	addrs := c.addrs()
	if len(addrs) == 0 {
		return ErrNoAddress
	}
	tries := 1
	if r.each {
		tries = len(addrs)
	}
	var errs []error
	for range tries {
		at := c.next.Load()
		addr := addrs[at%uint64(len(addrs))]
		err := c.once(ctx, addr, r)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s: %w", addr, err)
		if ctx.Err() != nil {
			// The caller gave up; the node did not fail.
			return err
		}
		if r.stopAtRefusal && refused(err) {
			return err
		}
		// Move on, unless a concurrent call already has.
		c.next.CompareAndSwap(at, at+1)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// once sends r to the node at addr.
func (c *Client) once(ctx context.Context, addr string, r request) error {
	base, err := baseURL(addr)
	if err != nil {
		return err
	}
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.in != nil {
		b, err := json.Marshal(r.in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return err
	}
	if r.in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.machineID != "" {
		req.Header.Set(api.MachineIDHeader, c.machineID)
	}
	c.retireConnections()
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return readError(resp)
	}
	if r.raw != nil {
		*r.raw = resp
		return nil
	}
	defer resp.Body.Close()
	if r.out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(r.out); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// retireConnections closes the pooled connections made with an older
// client certificate.
func (c *Client) retireConnections() {
	if c.generation == nil {
		return
	}
	g := c.generation()
	c.genMu.Lock()
	defer c.genMu.Unlock()
	if g != c.gen {
		c.http.CloseIdleConnections()
		c.gen = g
	}
}

// readError reads a non-2xx answer: the API's JSON error, or else the start
// of whatever the body holds (a proxy's page, Go's plain-text 404).
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	e := &Error{Status: resp.StatusCode}
	var body api.Error
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Code, e.Message = body.Code, body.Error
		return e
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 512 {
		msg = strings.ToValidUTF8(msg[:512], "") + "…"
	}
	e.Message = msg
	return e
}

// baseURL returns the base URL of a node address: itself when it names
// https, else https://addr. Plain http is refused: without TLS there is no
// pin or CA to check, and tokens would cross the network in clear.
func baseURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("client: %q is not a node address (host:port or https://host:port)", addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Do sends one request to the current node: in, when not nil, as its JSON
// body; a 2xx answer is decoded into out when not nil; any other is an
// *Error. It is for the calls no typed method covers yet.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, request{method: method, path: path, in: in, out: out})
}
