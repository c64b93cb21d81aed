package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/gateway/sshalg"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Permission extensions carrying the outer identity from authentication to
// the session handlers (and, later, to the jump's inner connection).
const (
	extUserID         = "rampart-user-id"
	extBindingExpires = "rampart-binding-expires"
	extAuthMethod     = "rampart-auth"
	// extBinding and extBindingIndex name the device binding the
	// connection signed in with (its key's fingerprint and the raft index
	// that created it); empty without one. Revoking it ends the jump
	// sessions the connection opened and closes the connection (revoke.go).
	extBinding      = "rampart-binding"
	extBindingIndex = "rampart-binding-index"
)

// Defaults for Config.
const (
	DefaultHandshakeTimeout    = 20 * time.Second
	DefaultAuthTimeout         = 10 * time.Minute
	DefaultMaxPreauth          = 256
	DefaultMaxPreauthPerIP     = 16
	DefaultMaxDeviceFlowsPerIP = 8
)

// Config configures the front door.
type Config struct {
	// Addr is the listen address.
	Addr string
	// HostSigners are the node's host key and its host certificate; both are
	// offered so that clients without certificate support can pin the key.
	HostSigners []gossh.Signer
	// JumpHost is what users put after -J (host or host:port) in the lines
	// the greeting prints.
	JumpHost string
	// HandshakeTimeout bounds each step before a device flow starts: from
	// accepting the connection to its first authentication request (version
	// exchange, key exchange), and from there to a bound key's login or the
	// start of the device flow.
	HandshakeTimeout time.Duration
	// AuthTimeout bounds a running device flow (the wait for the person to
	// approve in a browser), extended to the device code's expiry.
	AuthTimeout time.Duration
	// MaxPreauth and MaxPreauthPerIP bound unauthenticated connections;
	// MaxDeviceFlowsPerIP bounds device flows that are still polling the
	// IdP. Per IP means per IPv4 address or per IPv6 /64.
	MaxPreauth, MaxPreauthPerIP, MaxDeviceFlowsPerIP int
	// AdminGroup is the IdP group whose members may open the admin shell.
	AdminGroup string
	// Jump, when set, answers direct-tcpip requests (ssh -J). Without it they
	// are refused; nothing is ever forwarded as plain bytes.
	Jump Jumper
	// Admin, when set, is the admin shell that members of AdminGroup reach
	// as `ssh admin@bastion`.
	Admin AdminShell
	// Requests, when set, runs the access-request commands (ssh bastion
	// request, requests, approve, deny, revoke: requests.go).
	Requests Requests
	// Ciphers offered to clients; empty means sshalg.DefaultCiphers.
	Ciphers []string
	// Metrics are the front door's instruments; nil: unregistered ones.
	Metrics *Metrics
}

// AdminShell runs admin commands (gateway/adminshell implements it).
type AdminShell interface {
	RunLine(ctx context.Context, actor adminshell.Actor, line string, stdin io.Reader, stdout, stderr io.Writer) int
	RunInteractiveResize(ctx context.Context, actor adminshell.Actor, rw io.ReadWriter, size adminshell.WindowSize, resize <-chan adminshell.WindowSize) int
}

// DeviceFlow runs the OIDC device flow (login.Provider implements it).
type DeviceFlow interface {
	Start(ctx context.Context) (*login.DeviceAuth, error)
	Wait(ctx context.Context, da *login.DeviceAuth) (*login.Identity, error)
}

// Jumper takes direct-tcpip requests of authenticated connections (the jump
// proxy implements it).
type Jumper interface {
	HandleDirectTCPIP(ctx context.Context, id jump.Identity, nc gossh.NewChannel)
	// Targets is the rule for the addresses the jump dials (never metadata
	// services, the node's own addresses...): the greeting lists only the
	// servers gateway/access lets through with it.
	Targets() *targetaddr.Rule
}

// Auditor records audit events; it must not block.
type Auditor interface {
	Record(typ, actor string, fields map[string]string)
}

// Server is the SSH front door.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	login   *login.Service
	idp     DeviceFlow
	state   func() *raftstore.State
	audit   Auditor
	limiter *preauthLimiter
	// refusals rate-limits the log lines of refused connections and sign-ins.
	refusals *logLimiter
	srv      *gliderssh.Server
	now      func() time.Time
	// bound are the live connections that signed in with a binding;
	// keyless those that signed in without a key, whose people's IdP
	// sessions this front door holds as holder (keyless.go).
	bound   boundConns
	keyless keylessConns
	holder  string

	mu sync.Mutex
	ln net.Listener
}

// New builds the front door. state reads the local replica for the greeting.
func New(cfg Config, svc *login.Service, idp DeviceFlow, state func() *raftstore.State, audit Auditor, logger *slog.Logger) *Server {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.MaxPreauth <= 0 {
		cfg.MaxPreauth = DefaultMaxPreauth
	}
	if cfg.MaxPreauthPerIP <= 0 {
		cfg.MaxPreauthPerIP = DefaultMaxPreauthPerIP
	}
	if cfg.MaxDeviceFlowsPerIP <= 0 {
		cfg.MaxDeviceFlowsPerIP = DefaultMaxDeviceFlowsPerIP
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Server{cfg: cfg, logger: logger, login: svc, idp: idp, state: state, audit: audit,
		limiter:  newPreauthLimiter(cfg.MaxPreauth, cfg.MaxPreauthPerIP, cfg.MaxDeviceFlowsPerIP),
		refusals: newLogLimiter(refusalLogEvery, refusalLogBurst), now: time.Now, holder: newHolderID()}
	s.srv = &gliderssh.Server{
		Addr:                 cfg.Addr,
		HostSigners:          toGliderSigners(cfg.HostSigners),
		Version:              versionName,
		Handler:              s.handleSession,
		ConnCallback:         s.acceptConn,
		ServerConfigCallback: s.serverConfig,
		ChannelHandlers:      map[string]gliderssh.ChannelHandler{"session": s.sessionChannel},
	}
	if cfg.Jump != nil {
		s.srv.ChannelHandlers["direct-tcpip"] = s.handleDirectTCPIP
	}
	return s
}

func toGliderSigners(in []gossh.Signer) []gliderssh.Signer {
	out := make([]gliderssh.Signer, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	if errors.Is(err, gliderssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops accepting and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }

// Addr is the address the server listens on (after Serve started).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

type ctxKey struct{}

// handleDirectTCPIP hands a direct-tcpip request to the jump proxy with the
// outer connection's identity.
func (s *Server) handleDirectTCPIP(_ *gliderssh.Server, sc *gossh.ServerConn, nc gossh.NewChannel, ctx gliderssh.Context) {
	if sc.Permissions == nil || sc.Permissions.Extensions[extUserID] == "" {
		_ = nc.Reject(gossh.Prohibited, "not signed in")
		return
	}
	// A revocation closing the connection leaves the hop to the jump,
	// which ends it with its own message.
	if c, _ := ctx.Value(ctxKey{}).(*conn); c != nil {
		defer c.sessionOpened(nil, true)()
	}
	ext := sc.Permissions.Extensions
	idx, _ := strconv.ParseUint(ext[extBindingIndex], 10, 64)
	s.cfg.Jump.HandleDirectTCPIP(ctx, jump.Identity{
		UserID: ext[extUserID], Remote: sc.RemoteAddr(), Local: sc.LocalAddr(), ClientVersion: string(sc.ClientVersion()),
		Binding: ext[extBinding], BindingIndex: idx,
	}, nc)
}

// acceptConn admits a connection if the pre-auth limits allow it, and gives
// it the handshake deadline: a connection that never gets as far as asking
// to authenticate gives its slot back after HandshakeTimeout.
func (s *Server) acceptConn(ctx gliderssh.Context, nc net.Conn) net.Conn {
	src := sourceOf(nc.RemoteAddr())
	if ok, limit := s.limiter.acquireWhy(src); !ok {
		s.cfg.Metrics.Refusals.WithLabelValues(limit).Inc()
		s.refusals.warn(s.logger, s.now(), "refused connection: too many unauthenticated connections", "source", src)
		return nil
	}
	tc := newTrackedConn(nc, func() { s.limiter.release(src) })
	tc.setDeadline(s.now().Add(s.cfg.HandshakeTimeout))
	vc, version, err := exchangeVersion(tc, serverVersion)
	if err != nil {
		s.logger.Debug("connection ended before its version line", "remote", nc.RemoteAddr().String(), "err", err)
		_ = tc.Close()
		return nil
	}
	ctx.SetValue(ctxKey{}, &conn{s: s, tc: tc, remote: nc.RemoteAddr().String(), source: src, clientVersion: version})
	return vc
}

// serverConfig builds the per-connection SSH configuration whose callbacks
// are the methods of that connection's state.
func (s *Server) serverConfig(ctx gliderssh.Context) *gossh.ServerConfig {
	c, _ := ctx.Value(ctxKey{}).(*conn)
	cfg := &gossh.ServerConfig{
		MaxAuthTries: 6,
		// gliderlabs sets NoClientAuth when none of its own handlers is set,
		// and ours are set here instead: refuse "none" explicitly.
		NoClientAuthCallback: func(gossh.ConnMetadata) (*gossh.Permissions, error) {
			if c != nil {
				c.authRequested()
			}
			return nil, errors.New("authentication required")
		},
	}
	if c == nil {
		sshalg.Server(cfg, s.cfg.Ciphers, "")
		// Not admitted through acceptConn: admit nobody.
		cfg.PublicKeyCallback = func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) {
			return nil, errors.New("refused")
		}
		return cfg
	}
	sshalg.Server(cfg, s.cfg.Ciphers, c.clientVersion)
	cfg.PreAuthConnCallback = func(p gossh.ServerPreAuthConn) { c.preauth = p }
	cfg.PublicKeyCallback = c.offeredKey
	cfg.VerifiedPublicKeyCallback = c.verifiedKey
	cfg.KeyboardInteractiveCallback = c.keyboardInteractive
	return cfg
}

// conn is one connection's authentication state; its methods are the SSH
// callbacks.
type conn struct {
	s      *Server
	tc     *trackedConn
	remote string
	// source is what the pre-auth limits count: the IPv4 address or IPv6 /64.
	source  string
	preauth gossh.ServerPreAuthConn
	// requested is set at the first authentication request, which gives
	// the connection a second HandshakeTimeout to reach a login or a
	// device flow (time for a person to type a key's passphrase).
	requested bool
	// clientVersion is the client's version line, read before the
	// handshake (version.go).
	clientVersion string

	// key is the verified key awaiting a device flow, bound when it succeeds.
	key gossh.PublicKey
	// closed is set once the connection may not sign in any more: it got its
	// one browser sign-in (a client retrying keyboard-interactive after a
	// denial does not start more), or its key belongs to a disabled user, or
	// this node cannot vouch for its state.
	closed bool

	// who is set by admit, before the connection's first channel.
	who signedIn
	// endOnce closes the connection once its binding is revoked.
	endOnce sync.Once
	// sessions are the connection's live sessions and jump hops, which a
	// revocation lets finish or tells why before it closes the connection.
	sessMu   sync.Mutex
	sessions map[*liveSession]struct{}
}

// authRequested restarts the handshake deadline once, at the first
// authentication request. The callbacks run one at a time on the
// connection's goroutine, so admit and the device flow set theirs after it.
func (c *conn) authRequested() {
	if c.requested {
		return
	}
	c.requested = true
	c.tc.setDeadline(c.s.now().Add(c.s.cfg.HandshakeTimeout))
}

// offeredKey accepts any key for the signature check; what the key is worth
// is decided once its possession is proven, in verifiedKey.
func (c *conn) offeredKey(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) {
	c.authRequested()
	return nil, nil
}

// verifiedKey admits a key bound to an active user; any other key moves on
// to keyboard-interactive, where the device flow binds it.
func (c *conn) verifiedKey(meta gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
	user, b, err := c.s.login.BoundUser(key)
	switch {
	case errors.Is(err, login.ErrUserDisabled):
		c.closed = true
		c.s.cfg.Metrics.login(methodBoundKey, outcomeRefused)
		c.s.logger.Warn("refused bound key of a disabled user", "remote", c.remote, "key", gossh.FingerprintSHA256(key))
		c.s.audit.Record(EventLoginRefuse, "", map[string]string{"reason": "user disabled", "key": gossh.FingerprintSHA256(key), "remote": c.remote})
		return nil, &gossh.BannerError{Err: err, Message: "Rampart: " + err.Error() + "\r\n"}
	case errors.Is(err, raftstore.ErrStaleRead):
		c.closed = true
		c.s.cfg.Metrics.login(methodBoundKey, outcomeRefused)
		c.s.logger.Warn("refused login: replica is stale", "remote", c.remote)
		return nil, &gossh.BannerError{Err: err, Message: "Rampart: this bastion node cannot reach its cluster right now; try another node or try again shortly.\r\n"}
	case err != nil:
		c.s.cfg.Metrics.login(methodBoundKey, outcomeFailed)
		c.s.logger.Error("bound key lookup failed", "remote", c.remote, "err", err)
		return nil, err
	case user != nil:
		c.s.cfg.Metrics.login(methodBoundKey, outcomeOK)
		c.s.audit.Record(EventLoginAccept, user.Login, map[string]string{"method": "bound-key", "key": b.Fingerprint, "remote": c.remote, "ssh_user": raftstore.ClientText(meta.User())})
		return c.admit(user, b, "bound-key"), nil
	}
	c.key = key
	return nil, &gossh.PartialSuccessError{Next: gossh.ServerAuthCallbacks{KeyboardInteractiveCallback: c.keyboardInteractive}}
}

// admit marks the connection authenticated and returns its permissions; b
// is the device binding it signed in with, or nil.
func (c *conn) admit(u *raftstore.User, b *raftstore.Binding, method string) *gossh.Permissions {
	c.tc.authenticated()
	ext := map[string]string{extUserID: u.ID, extBindingExpires: "", extAuthMethod: method}
	c.who = signedIn{userID: u.ID, login: u.Login}
	if b != nil {
		ext[extBindingExpires] = b.ExpiresAt.UTC().Format(time.RFC3339)
		ext[extBinding], ext[extBindingIndex] = b.Fingerprint, strconv.FormatUint(b.CreateIndex, 10)
		c.who.binding, c.who.bindingIndex = b.Fingerprint, b.CreateIndex
		c.s.track(c)
	} else {
		c.s.trackKeyless(c)
	}
	return &gossh.Permissions{Extensions: ext}
}

// keyboardInteractive runs the OIDC device flow: a QR code in a banner, the
// URL and code in one info request with no prompts, then it polls the IdP.
func (c *conn) keyboardInteractive(meta gossh.ConnMetadata, challenge gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
	if c.closed {
		return nil, errors.New("no further sign-in on this connection")
	}
	c.closed = true
	c.authRequested()
	if !c.s.limiter.acquireFlow(c.source) {
		c.s.cfg.Metrics.Refusals.WithLabelValues(limitFlowsPerSource).Inc()
		c.s.cfg.Metrics.login(methodDeviceFlow, outcomeRefused)
		c.s.refusals.warn(c.s.logger, c.s.now(), "refused sign-in: too many device flows from one source", "source", c.source)
		c.s.audit.Record(EventLoginRefuse, "", map[string]string{"reason": "too many device flows from this source", "remote": c.remote})
		return nil, &gossh.BannerError{Err: errTooManyFlows, Message: "Rampart: " + errTooManyFlows.Error() + "\r\n"}
	}
	// Released when this callback returns, which is when polling has stopped.
	defer c.s.limiter.releaseFlow(c.source)
	c.s.cfg.Metrics.DeviceFlows.Inc()
	defer c.s.cfg.Metrics.DeviceFlows.Dec()
	// The device flow waits for a person: the long wait replaces the
	// handshake deadline.
	c.tc.setDeadline(c.s.now().Add(c.s.cfg.AuthTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.AuthTimeout)
	defer cancel()
	// The client leaving ends the flow: x/crypto closes the connection when
	// it does, but tells this callback nothing.
	go func(done <-chan struct{}) {
		select {
		case <-c.tc.gone:
			cancel()
		case <-done:
		}
	}(ctx.Done())
	abandoned := func(err error) (*gossh.Permissions, error) {
		c.s.cfg.Metrics.login(methodDeviceFlow, outcomeAbandoned)
		c.s.logger.Info("sign-in abandoned: the client disconnected", "remote", c.remote)
		c.s.audit.Record(EventLoginFail, "", map[string]string{"reason": "client disconnected", "remote": c.remote})
		return nil, err
	}
	fail := func(err error, reason string) (*gossh.Permissions, error) {
		if c.isGone() {
			return abandoned(err)
		}
		// No second sign-in on this connection: it has no more use for
		// the long wait.
		c.tc.setDeadline(c.s.now().Add(c.s.cfg.HandshakeTimeout))
		c.s.cfg.Metrics.login(methodDeviceFlow, outcomeFailed)
		c.s.audit.Record(EventLoginFail, "", map[string]string{"reason": reason, "remote": c.remote})
		return nil, &gossh.BannerError{Err: err, Message: "Rampart: " + userMessage(err) + "\r\n"}
	}
	da, err := c.s.idp.Start(ctx)
	if err != nil {
		return fail(err, "device authorization failed")
	}
	if !safePrompt(da.VerificationURIComplete) || !safePrompt(da.VerificationURI) || !safePrompt(da.UserCode) {
		c.s.logger.Error("identity provider returned a verification URI or user code that is not plain printable ASCII")
		return fail(login.ErrIdPFailed, "unsafe device authorization response")
	}
	if !da.Expiry.IsZero() {
		ctx2, cancel2 := context.WithDeadline(ctx, da.Expiry.Add(5*time.Second))
		defer cancel2()
		ctx = ctx2
		c.tc.setDeadline(da.Expiry.Add(30 * time.Second))
	}
	if c.preauth != nil {
		if qr := qrBanner(da.VerificationURIComplete); qr != "" {
			_ = c.preauth.SendAuthBanner(qr)
		}
	}
	if _, err := challenge("", deviceInstruction(da, c.s.now()), nil, nil); err != nil {
		if c.isGone() {
			return abandoned(err)
		}
		return nil, err
	}
	id, err := c.s.idp.Wait(ctx, da)
	if err != nil {
		return fail(err, "device flow: "+err.Error())
	}
	user, err := c.s.login.Provision(ctx, id)
	if err != nil {
		c.s.logger.Warn("sign-in refused", "user", id.Login, "err", err)
		return fail(err, "provisioning refused")
	}
	var binding *raftstore.Binding
	method := "device-flow"
	if c.key != nil {
		b, err := c.s.login.Bind(ctx, user, c.key, login.BindInfo{ClientVersion: raftstore.ClientText(string(meta.ClientVersion())), SourceAddr: c.remote})
		if err != nil {
			c.s.logger.Error("binding key failed", "user", user.Login, "err", err)
			return fail(err, "binding failed")
		}
		binding, method = b, "device-flow+bind"
	}
	c.s.cfg.Metrics.login(metricMethod(method), outcomeOK)
	c.s.audit.Record(EventLoginAccept, user.Login, map[string]string{"method": method, "remote": c.remote, "ssh_user": raftstore.ClientText(meta.User()), "unix_name": user.UnixName})
	c.s.logger.Info("signed in", "user", user.Login, "unix_name", user.UnixName, "method", method, "remote", c.remote)
	return c.admit(user, binding, method), nil
}

// isGone reports whether the client has left.
func (c *conn) isGone() bool {
	select {
	case <-c.tc.gone:
		return true
	default:
		return false
	}
}

// errTooManyFlows refuses a device flow beyond the per-source cap.
var errTooManyFlows = errors.New("too many sign-ins are waiting from your address; finish or cancel one, then try again")

// userMessage is what the person sees for err: the sentinel messages of the
// login package are written for them; anything else stays in the log.
func userMessage(err error) string {
	for _, known := range []error{login.ErrIdPUnavailable, login.ErrDenied, login.ErrCodeExpired, login.ErrCodeRejected,
		login.ErrIdPFailed, login.ErrIdPRefused, login.ErrBadToken, login.ErrDeactivatedInIdP, login.ErrUserDisabled} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	if errors.Is(err, login.ErrBadIdentity) {
		return err.Error()
	}
	if errors.Is(err, raftstore.ErrNoLeader) || errors.Is(err, raftstore.ErrStaleRead) {
		return "the bastion cluster is not available right now; try again shortly."
	}
	return "sign-in failed; ask an administrator to check the bastion's log."
}

// safePrompt admits printable ASCII only: OpenSSH prints the instruction with
// its own escaping and cuts it at about 1 KiB.
func safePrompt(s string) bool {
	if s == "" || len(s) > 400 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// deviceInstruction is the keyboard-interactive instruction: plain ASCII,
// well under 1000 bytes.
func deviceInstruction(da *login.DeviceAuth, now time.Time) string {
	var b strings.Builder
	b.WriteString("Rampart sign-in. Open this link in a browser and approve:\r\n  ")
	b.WriteString(da.VerificationURIComplete)
	b.WriteString("\r\nor go to ")
	b.WriteString(da.VerificationURI)
	b.WriteString(" and enter the code: ")
	b.WriteString(da.UserCode)
	if !da.Expiry.IsZero() {
		fmt.Fprintf(&b, "\r\nThe code expires in %s. Waiting for approval...", da.Expiry.Sub(now).Round(time.Second))
	}
	return b.String()
}
