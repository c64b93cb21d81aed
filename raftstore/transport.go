package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Node-to-node traffic shares one TLS port. After the mutual-TLS handshake the
// dialler sends one byte naming the protocol that follows.
const (
	protoRaft    byte = 'R'
	protoForward byte = 'F'
	// forwardAccepted is the one byte a node answers a forwarding
	// connection with once it has admitted the peer. A dialler that does not
	// get it knows that nothing it might send was read, so a refused
	// connection (a leader whose replica is still replaying its log after a
	// restart does not know its members yet) is safely retried.
	forwardAccepted byte = 'A'
)

// firstByteTimeout bounds how long an accepted connection may take to finish
// its handshake and say which protocol it speaks.
const firstByteTimeout = 10 * time.Second

// mux accepts mutual-TLS connections on the raft port and hands each to raft
// or to the forwarding server according to its first byte.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	clientTLS *tls.Config
	logger    *slog.Logger

	raftCh    chan net.Conn
	forwardFn func(net.Conn)
	// authorize decides, per protocol, whether the peer that presented cert
	// may speak it.
	authorize func(proto byte, cert *x509.Certificate) error
	// checkServer, when set, decides whether a node this one dialled may
	// be spoken to, from the certificate it presented.
	checkServer func(cert *x509.Certificate) error

	closeOnce sync.Once
	closed    chan struct{}
}

func newMux(bind string, serverTLS, clientTLS *tls.Config, logger *slog.Logger) (*mux, error) {
	if serverTLS == nil || clientTLS == nil {
		return nil, errors.New("raft transport: TLS configuration is required")
	}
	if serverTLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("raft transport: server TLS must require and verify client certificates")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	return &mux{
		ln:        tls.NewListener(ln, serverTLS),
		advertise: ln.Addr(),
		clientTLS: clientTLS,
		logger:    logger,
		raftCh:    make(chan net.Conn, 16),
		closed:    make(chan struct{}),
	}, nil
}

// setAdvertise sets the address other nodes dial. Empty, or a port of 0,
// means the listener's own address (useful with 127.0.0.1:0 in tests).
func (m *mux) setAdvertise(addr string) error {
	if addr == "" {
		if m.advertise.(*net.TCPAddr).IP.IsUnspecified() {
			return fmt.Errorf("raft listens on %s: set an advertise address other nodes can reach", m.advertise)
		}
		return nil
	}
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("raft advertise address %q: %w", addr, err)
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return fmt.Errorf("raft advertise address %q must name a reachable IP, not a wildcard", addr)
	}
	if a.Port == 0 {
		a.Port = m.ln.Addr().(*net.TCPAddr).Port
	}
	m.advertise = a
	return nil
}

// serve accepts until the listener closes.
func (m *mux) serve() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			m.logger.Warn("raft port accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go m.route(conn)
	}
}

func (m *mux) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(firstByteTimeout))
	tc := conn.(*tls.Conn)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		// A peer without a certificate from this cluster's CA ends here.
		m.logger.Warn("refused node connection: TLS handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if m.authorize != nil {
		peers := tc.ConnectionState().PeerCertificates
		if len(peers) == 0 {
			conn.Close()
			return
		}
		if err := m.authorize(b[0], peers[0]); err != nil {
			m.logger.Warn("refused node connection", "remote", conn.RemoteAddr().String(), "err", err)
			conn.Close()
			return
		}
	}
	switch b[0] {
	case protoRaft:
		select {
		case m.raftCh <- conn:
		case <-m.closed:
			conn.Close()
		}
	case protoForward:
		if m.forwardFn == nil {
			conn.Close()
			return
		}
		if _, err := conn.Write([]byte{forwardAccepted}); err != nil {
			conn.Close()
			return
		}
		m.forwardFn(conn)
	default:
		m.logger.Warn("refused node connection: unknown protocol byte", "remote", conn.RemoteAddr().String(), "byte", b[0])
		conn.Close()
	}
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// dial opens a mutual-TLS connection to a node's raft port and announces proto.
func (m *mux) dial(address string, proto byte, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial node %s: %w", address, err)
	}
	cfg := m.clientTLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", address, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial node %s: %w", address, err)
	}
	if m.checkServer != nil {
		peers := conn.ConnectionState().PeerCertificates
		if len(peers) == 0 {
			conn.Close()
			return nil, fmt.Errorf("dial node %s: no certificate", address)
		}
		if err := m.checkServer(peers[0]); err != nil {
			conn.Close()
			return nil, fmt.Errorf("dial node %s: %w", address, err)
		}
	}
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial node %s: %w", address, err)
	}
	return conn, nil
}

// raftLayer is the raft.StreamLayer view of the mux.
type raftLayer struct{ m *mux }

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.m.closed:
		return nil, errors.New("raft transport closed")
	}
}

func (l raftLayer) Close() error   { return l.m.close() }
func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.m.dial(string(address), protoRaft, timeout)
}
