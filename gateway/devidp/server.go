package devidp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// ErrNotLoopback is returned by Serve for a listener on a non-loopback
// address when Config.AllowNonLoopback is not set.
var ErrNotLoopback = errors.New("devidp: refusing to serve on a non-loopback address (set allow_non_loopback to force it)")

// Server is a running-ready dev IdP: the OpenID Provider and its pages.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *storage
	provider *op.Provider
	handler  http.Handler
}

// New validates cfg (listing every problem), makes a fresh signing key and
// returns the server. A nil logger discards logs. zitadel op logs request
// errors through slog.Default, not through logger.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "devidp")

	store, err := newStorage(cfg)
	if err != nil {
		return nil, err
	}
	store.logger = logger
	if err := store.load(); err != nil {
		return nil, err
	}
	opCfg := &op.Config{
		CryptoKeyId:           "devidp",
		SupportedScopes:       supportedScopes,
		GrantTypeRefreshToken: true,
		SupportedClaims:       supportedClaims(cfg.ClaimNames),
		CodeMethodS256:        true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     cfg.DeviceCodeTTL,
			PollInterval: cfg.PollInterval,
			UserFormPath: devicePath,
			UserCode:     userCodeConfig,
		},
	}
	// The key encrypts opaque access tokens; like the signing key it lives
	// only as long as the process.
	if _, err := rand.Read(opCfg.CryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devidp: token key: %w", err)
	}
	var opts []op.Option
	if strings.HasPrefix(cfg.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(opCfg, store, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("devidp: build provider: %w", err)
	}

	pg := newPages(store, logger, strings.HasPrefix(cfg.Issuer, "https://"))
	mux := http.NewServeMux()
	mux.HandleFunc(devicePath, only(http.MethodGet, pg.entry))
	mux.HandleFunc(loginPath, only(http.MethodPost, pg.login))
	mux.HandleFunc(confirmPath, only(http.MethodPost, pg.confirm))
	mux.HandleFunc(pollsPath, only(http.MethodGet, pg.polls))
	callback := strings.TrimSuffix(cfg.Issuer, "/") + "/authorize/callback?id="
	mux.HandleFunc(signinPath, pg.signin(func(_ context.Context, id string) string { return callback + url.QueryEscape(id) }))
	users := &usersPage{store: store, log: logger, issuer: cfg.Issuer}
	mux.HandleFunc(usersPath, users.serve)
	// Everything else is the OpenID Provider: discovery, keys, device
	// authorization, token, userinfo, ...
	mux.Handle("/", provider)

	return &Server{cfg: cfg, log: logger, store: store, provider: provider, handler: mux}, nil
}

// supportedClaims is what discovery advertises.
func supportedClaims(n ClaimNames) []string {
	return []string{
		"sub", "iss", "aud", "exp", "iat", "auth_time", "amr", "azp", "at_hash",
		"name", "email", "email_verified",
		strings.Split(n.Username, ".")[0], strings.Split(n.Groups, ".")[0],
	}
}

// Issuer is the issuer URL tokens carry.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// Handler serves the provider and its pages. It does not check the
// listener's address; Serve does.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on addr (empty: the issuer's host and port) and
// serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		u, _ := url.Parse(s.cfg.Issuer) // validated in New
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("devidp: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends, then shuts down gracefully (up to 5s)
// and returns nil. It takes ownership of l. A listener on a non-loopback
// address is refused with ErrNotLoopback unless Config.AllowNonLoopback.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if !s.cfg.AllowNonLoopback && !isLoopback(l.Addr()) {
		_ = l.Close()
		return fmt.Errorf("%w: %s", ErrNotLoopback, l.Addr())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("dev IdP serving", "addr", l.Addr().String(), "issuer", s.cfg.Issuer)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("devidp: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	<-errc // Serve has returned http.ErrServerClosed
	s.log.Info("dev IdP stopped", "addr", l.Addr().String())
	if err != nil {
		return fmt.Errorf("devidp: shutdown: %w", err)
	}
	return nil
}

func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
