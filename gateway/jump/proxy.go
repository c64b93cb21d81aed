package jump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/gateway/sshalg"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Store is what the proxy needs of the replicated store.
type Store interface {
	State() *raftstore.State
	FSM() *raftstore.FSM
	CheckFresh() error
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
}

// Minter holds the keys: it mints per-hop user certificates with a project's
// user CA, presents the inner server's host keys, and knows the host CA.
type Minter interface {
	MintUser(ctx context.Context, req ca.UserCertRequest) (*gossh.Certificate, error)
	InnerHostSigners(srv *raftstore.Server, requestedName string) ([]gossh.Signer, error)
	HostCAKeys() ([]gossh.PublicKey, error)
}

// Auditor records audit events without blocking.
type Auditor interface {
	Record(typ, actor string, fields map[string]string)
}

// Recorder records one pty session (gateway/recording implements it).
type Recorder interface {
	Output(p []byte) error
	Input(p []byte) error
	Resize(w, h int) error
	// Close ends the recording and says where it is and its SHA-256.
	Close() (sha256, path string, err error)
}

// RecordingSpec says what to record of one pty session, and how
// (recording.Spec: the one description the recorder and the archive share).
type RecordingSpec = recording.Spec

// RecorderFactory starts the recording of a pty session of a project that
// records; an error means recording could not start. A nil Recorder with
// no error leaves the session unrecorded.
type RecorderFactory func(spec RecordingSpec) (Recorder, error)

// Config configures the proxy.
type Config struct {
	NodeID string
	// EgressIPs are the node's addresses towards targets: the dial source and
	// the per-hop certificate's source-address.
	EgressIPs []net.IP
	// Targets is the rule for which addresses may be dialled (the node's
	// own never; loopback only when it allows it).
	Targets     targetaddr.Rule
	DialTimeout time.Duration
	// DefaultCertTTL applies when the project sets none.
	DefaultCertTTL time.Duration
	// Ciphers are offered to people's clients on the inner connection and
	// preferred towards targets; empty means sshalg.DefaultCiphers.
	Ciphers []string
	// Metrics are the jump's instruments; nil: unregistered ones.
	Metrics *Metrics
	// RequestCommand is how a person runs a command on this bastion
	// ("ssh bastion"): a refusal for want of a grant in a project that
	// takes requests tells them how to ask with it. Empty: "ssh bastion".
	RequestCommand string
	// AgentWait bounds how long a person's login to their own account waits
	// for the target's agent to have applied it (agentwait.go); zero means
	// DefaultAgentWait, less than zero no wait.
	AgentWait time.Duration
}

// Bounds on audit fields that carry what a client sent (raftstore.BoundText);
// the shorter ones use raftstore.ClientText.
const (
	// maxAuditReason bounds a refusal's reason, which may quote the client.
	maxAuditReason = 1024
	// maxAuditCommand bounds an exec request's command: long enough for
	// the scripts people pass inline, short of the 256 KiB a packet holds.
	maxAuditCommand = 4096
)

// Proxy is the terminating jump proxy of one node.
type Proxy struct {
	cfg    Config
	store  Store
	mint   Minter
	audit  Auditor
	record RecorderFactory
	logger *slog.Logger
	// clock is the time of sessions' start, end and limits.
	clock    clock
	sessions *registry
	// targetCiphers: the configured ciphers first, then x/crypto's others.
	targetCiphers []string
}

// New returns a proxy. record may be nil (no recordings).
func New(cfg Config, store Store, mint Minter, audit Auditor, record RecorderFactory, logger *slog.Logger) *Proxy {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if len(cfg.Ciphers) == 0 {
		cfg.Ciphers = sshalg.DefaultCiphers
	}
	if cfg.DefaultCertTTL == 0 {
		cfg.DefaultCertTTL = api.DefaultUserCertTTL
	}
	if cfg.AgentWait == 0 {
		cfg.AgentWait = DefaultAgentWait
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Proxy{cfg: cfg, store: store, mint: mint, audit: audit, record: record, logger: logger, clock: realClock{}, sessions: newRegistry(),
		targetCiphers: sshalg.TargetCiphers(cfg.Ciphers)}
}

// Identity is the outer (bastion) connection's identity.
type Identity struct {
	UserID        string
	Remote, Local net.Addr
	ClientVersion string
	// Binding is the fingerprint of the device binding the connection
	// signed in with, and BindingIndex the raft index that created it;
	// "" and 0 without one. Once the binding is revoked the connection
	// opens no more sessions, and its live ones end.
	Binding      string
	BindingIndex uint64
}

// directTCPIP is the payload of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIP struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// HandleDirectTCPIP answers one direct-tcpip request on an authenticated
// outer connection. It returns when the proxied connection ends.
func (p *Proxy) HandleDirectTCPIP(ctx context.Context, id Identity, nc gossh.NewChannel) {
	var d directTCPIP
	if err := gossh.Unmarshal(nc.ExtraData(), &d); err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	// The destination is the client's to choose: bounded before it reaches
	// the log or the audit log.
	dest := raftstore.ClientText(net.JoinHostPort(d.DestAddr, strconv.Itoa(int(d.DestPort))))
	refuse := func(user string, err error) {
		reason := raftstore.BoundText(err.Error(), maxAuditReason)
		p.logger.Warn("jump refused", "user", user, "destination", dest, "reason", reason)
		p.audit.Record(EventJumpRefuse, user, map[string]string{"destination": dest, "reason": reason, "remote": id.Remote.String()})
		_ = nc.Reject(gossh.Prohibited, "Rampart: "+p.refusalText(err))
	}
	if err := p.store.CheckFresh(); err != nil {
		p.cfg.Metrics.Decisions.WithLabelValues("refused", reasonStale).Inc()
		refuse("", errors.New("this bastion node cannot reach its cluster right now"))
		return
	}
	acc, actor, err := p.authorize(p.store.State(), id, d.DestAddr, d.DestPort)
	if err != nil {
		p.cfg.Metrics.refused(err)
		refuse(actor, err)
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	// The channel's own requests (none are defined for direct-tcpip) are
	// answered by the bridge's loop, not a goroutine of their own.
	c := &conn{p: p, s: p.newSession(id, acc.user, acc.srv, acc), id: id, user: acc.user, srv: acc.srv, ip: acc.ip, acc: acc, requested: d.DestAddr, outerReqs: reqs}
	c.serve(ctx, &chanConn{Channel: ch, local: tcpAddr(id.Local), remote: tcpAddr(id.Remote)})
}

// newSession holds what a connection authorized for user on srv needs from
// here on.
func (p *Proxy) newSession(id Identity, user *raftstore.User, srv *raftstore.Server, acc *access) *session {
	return &session{id: newSessionID(), actor: user.Login, server: srv.Name, project: srv.Project, node: p.cfg.NodeID,
		remote: id.Remote.String(), started: p.clock.Now(), settings: acc.project.Settings,
		audit: p.audit, logger: p.logger, record: p.record, clock: p.clock, metrics: p.cfg.Metrics}
}

// conn is one proxied connection: the inner SSH server on the channel and
// the client connection to the target.
type conn struct {
	// p is the proxy's: the store, the minter, the live sessions and the
	// dialler. What the session needs past authorization is in s.
	p *Proxy
	s *session
	// outerReqs are requests on the person's direct-tcpip channel.
	outerReqs <-chan *gossh.Request
	id        Identity
	user      *raftstore.User
	srv       *raftstore.Server
	ip        net.IP
	acc       *access
	requested string

	// preauth sends the person banners while the inner leg authenticates.
	preauth gossh.ServerPreAuthConn

	mu     sync.Mutex
	login  string
	target *targetConn
	// refused is set once a login was refused: the person was told, and
	// every later method gets the same answer without a second banner.
	refused error
}

// errToldAlready answers the methods tried after a refusal the person
// has already been shown.
var errToldAlready = errors.New("login refused (reported already)")

// serve runs the inner SSH server on the accepted channel.
func (c *conn) serve(ctx context.Context, cc net.Conn) {
	defer cc.Close()
	signers, err := c.p.mint.InnerHostSigners(c.srv, c.requested)
	if err != nil {
		c.s.logger.Error("inner host keys", "server", c.srv.Name, "err", err)
		return
	}
	// The inner leg has no authentication of its own: who the person is was
	// settled on the outer connection. Every method ends in the same check
	// of the requested login, and in dialling the target with it, so that a
	// refusal reaches the person as a message before the session opens.
	// OpenSSH tries each method in turn (none, every key, keyboard-
	// interactive): a refusal is shown for the first, once.
	check := func(meta gossh.ConnMetadata) (*gossh.Permissions, error) {
		if err := c.connectTarget(ctx, meta.User()); err != nil {
			if errors.Is(err, errToldAlready) {
				return nil, err
			}
			return nil, &gossh.BannerError{Err: err, Message: "Rampart: " + err.Error() + "\r\n"}
		}
		return &gossh.Permissions{}, nil
	}
	cfg := &gossh.ServerConfig{
		NoClientAuth:         true,
		NoClientAuthCallback: check,
		PublicKeyCallback:    func(m gossh.ConnMetadata, _ gossh.PublicKey) (*gossh.Permissions, error) { return check(m) },
		KeyboardInteractiveCallback: func(m gossh.ConnMetadata, _ gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
			return check(m)
		},
		MaxAuthTries:  3,
		ServerVersion: "SSH-2.0-Rampart",
		// Called before the first method, in the same goroutine as the
		// auth callbacks.
		PreAuthConnCallback: func(pc gossh.ServerPreAuthConn) { c.preauth = pc },
	}
	// The inner client is the outer one's program (ssh -J runs the same
	// ssh twice), so its version line picks the ciphers here too.
	sshalg.Server(cfg, c.p.cfg.Ciphers, c.id.ClientVersion)
	for _, s := range signers {
		cfg.AddHostKey(s)
	}
	sconn, chans, greqs, err := gossh.NewServerConn(cc, cfg)
	if err != nil {
		c.mu.Lock()
		if c.target != nil {
			c.target.Close()
		}
		c.mu.Unlock()
		c.s.logger.Info("inner handshake ended", "user", c.user.Login, "server", c.srv.Name, "err", err)
		return
	}
	defer sconn.Close()
	c.mu.Lock()
	target, login := c.target, c.login
	c.mu.Unlock()
	defer target.Close()

	s := c.s
	s.event(EventSessionOpen, "login", login, "serial", strconv.FormatUint(target.certSerial, 10), "key_id", target.certKeyID)
	s.logger.Info("session opened", "user", s.actor, "login", login, "server", s.server, "session", s.id)
	openCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := c.p.store.Apply(openCtx, &raftstore.SessionOpen{Session: raftstore.Session{
		ID: s.id, UserID: c.user.ID, Login: login, ServerID: c.srv.ID, Project: s.project, Node: s.node,
		SourceAddr: s.remote, Start: s.started.UTC(), Binding: c.id.Binding, RequestID: s.requestID,
	}}); err != nil {
		s.logger.Error("record session open", "session", s.id, "err", err)
	}
	cancel()

	b := newBridge(s, sconn, target, c.outerReqs)
	m := c.p.cfg.Metrics
	m.SessionsOpened.Inc()
	m.SessionsLive.Inc()
	c.p.sessions.add(&liveSession{id: s.id, userID: c.user.ID, login: login, server: c.srv, identity: c.id,
		settings: s.settings, requestID: s.requestID, end: s.end, adoptRequest: s.adoptRequest})
	// A kill or a binding's revocation applied before the session joined
	// the registry (the open is replicated first) woke the watcher too
	// early: look once more.
	st := c.p.store.State()
	if st.ClosedSessions([]string{s.id}) != nil {
		s.end(killedReason)
	} else if bindingRevoked(st, c.id) {
		s.end(bindingRevokedReason)
	}
	stopTimers := s.enforceLimits()
	stopWindow := s.enforceRequestWindow()
	b.run(chans, greqs)
	stopWindow()
	stopTimers()
	// Out of the registry before the close is recorded: the watcher must not
	// take our own close for an administrator's.
	c.p.sessions.remove(s.id)

	in, out := b.bytes()
	m.SessionsLive.Dec()
	m.SessionsClosed.Inc()
	m.BytesRelayed.WithLabelValues("in").Add(float64(in))
	m.BytesRelayed.WithLabelValues("out").Add(float64(out))
	sha, path := s.recording()
	reason := s.endReason()
	closeCtx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := c.p.store.Apply(closeCtx, &raftstore.SessionClose{ID: s.id, End: s.clock.Now().UTC(), BytesIn: in, BytesOut: out,
		RecordingSHA256: sha, RecordingPath: path, EndReason: reason}); err != nil {
		s.logger.Error("record session close", "session", s.id, "err", err)
	}
	s.event(EventSessionClose, "bytes_in", strconv.FormatInt(in, 10), "bytes_out", strconv.FormatInt(out, 10), "reason", reason)
}

// connectTarget checks the requested login and dials the target with a
// freshly minted certificate for it.
func (c *conn) connectTarget(ctx context.Context, login string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.target != nil {
		if login == c.login {
			return nil
		}
		return fmt.Errorf("%w: one login per connection", ErrLoginDenied)
	}
	if c.refused != nil {
		return errToldAlready
	}
	refuse := func(err error) error {
		c.refused = err
		c.p.cfg.Metrics.refused(err)
		c.s.event(EventJumpRefuse, "login", raftstore.ClientText(login), "reason", raftstore.BoundText(err.Error(), maxAuditReason))
		return err
	}
	if err := c.acc.loginAllowed(c.user, login); err != nil {
		return refuse(err)
	}
	// Under an approved request alone, the session is that request's: it
	// carries its id and ends with its window.
	if r := c.acc.requestFor(c.user, login); r != nil {
		c.s.requestID, c.s.requestEnds = r.ID, r.ExpiresAt
	}
	// A person signed in moments ago may not have an account on the target
	// yet: wait for its agent rather than let sshd refuse them.
	if err := c.awaitAgent(ctx, login, c.tell); err != nil {
		return refuse(err)
	}
	client, err := c.p.dialTarget(ctx, c, login)
	if err != nil {
		return refuse(err)
	}
	c.target, c.login = client, login
	c.p.cfg.Metrics.Decisions.WithLabelValues("allowed", reasonOK).Inc()
	return nil
}

// tell shows the person a line while the inner leg authenticates (OpenSSH
// prints banners on stderr).
func (c *conn) tell(msg string) {
	if c.preauth == nil {
		return
	}
	if err := c.preauth.SendAuthBanner("Rampart: " + msg + "\r\n"); err != nil {
		c.s.logger.Debug("banner", "session", c.s.id, "err", err)
	}
}
