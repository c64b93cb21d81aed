package jump

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
)

// newSessionID returns a random session id.
func newSessionID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "s-" + hex.EncodeToString(b)
}

// dialTarget mints a per-hop certificate for a fresh in-memory key and logs
// in to the target as login, verifying the target's host key against the
// host CA or, when the target presents no host certificate, the keys pinned
// at enrollment. That fallback is logged and audited (once per connection:
// a key re-exchange checks the key again), and refused when the project
// requires a host certificate.
func (p *Proxy) dialTarget(ctx context.Context, c *conn, login string) (*targetConn, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	var sources []string
	for _, ip := range p.cfg.EgressIPs {
		sources = append(sources, ip.String())
	}
	s := c.s.settings
	ttl := s.CertTTL
	if ttl == 0 {
		ttl = p.cfg.DefaultCertTTL
	}
	cert, err := p.mint.MintUser(ctx, ca.UserCertRequest{
		PublicKey: key.PublicKey(), UnixName: login, UserLogin: c.s.actor, SessionID: c.s.id,
		Server: c.srv.Name, Project: c.srv.Project, SourceAddresses: sources, TTL: ttl,
		AllowPortForwarding: s.AllowLocalForward || s.AllowRemoteForward, AllowAgentForwarding: s.AllowAgentForward,
	})
	if err != nil {
		p.logger.Error("mint per-hop certificate", "server", c.srv.Name, "err", err)
		return nil, errMint
	}
	certSigner, err := gossh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	hostCAs, err := p.mint.HostCAKeys()
	if err != nil {
		return nil, err
	}
	requireCert := s.RequireHostCertificate
	var fellBack atomic.Bool
	var pinned []gossh.PublicKey
	for _, line := range c.srv.HostKeys {
		if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line)); err == nil {
			pinned = append(pinned, k)
		}
	}
	checker := &gossh.CertChecker{
		IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
			for _, k := range hostCAs {
				if bytes.Equal(k.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		},
		HostKeyFallback: func(_ string, _ net.Addr, k gossh.PublicKey) error {
			if !slices.ContainsFunc(pinned, func(pk gossh.PublicKey) bool { return bytes.Equal(pk.Marshal(), k.Marshal()) }) {
				return ErrTargetIdentity
			}
			if fellBack.Swap(true) {
				return nil
			}
			fp := gossh.FingerprintSHA256(k)
			p.logger.Warn("target presented no host certificate; its host key pinned at enrollment matches",
				"server", c.srv.Name, "project", c.srv.Project, "session", c.s.id, "fingerprint", fp, "refused", requireCert)
			c.s.event(EventHostKeyFallBack, "login", login, "key_type", k.Type(), "fingerprint", fp, "required", strconv.FormatBool(requireCert))
			if requireCert {
				return ErrNoHostCert
			}
			return nil
		},
	}
	dialer := &net.Dialer{Timeout: p.cfg.DialTimeout}
	if len(p.cfg.EgressIPs) > 0 {
		dialer.LocalAddr = &net.TCPAddr{IP: p.cfg.EgressIPs[0]}
	}
	port := strconv.Itoa(c.srv.SSHPort)
	tcp, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(c.ip.String(), port))
	if err != nil {
		p.logger.Warn("dial target", "server", c.srv.Name, "err", err)
		return nil, &reasoned{msg: fmt.Sprintf("cannot reach %s: the server does not answer", c.srv.Name), reason: errUnreachable}
	}
	// Dial the IP, but check the host certificate against the name the
	// server is enrolled under (CertChecker checks the host part).
	sc, chans, reqs, err := gossh.NewClientConn(tcp, net.JoinHostPort(c.srv.Name, port), &gossh.ClientConfig{
		User: login, Auth: []gossh.AuthMethod{gossh.PublicKeys(certSigner)},
		HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		Timeout: p.cfg.DialTimeout, ClientVersion: "SSH-2.0-Rampart",
		Config: gossh.Config{Ciphers: p.targetCiphers},
	})
	if err != nil {
		tcp.Close()
		p.logger.Warn("log in to target", "server", c.srv.Name, "login", login, "err", err)
		if errors.Is(err, ErrNoHostCert) {
			return nil, fmt.Errorf("%w (%s, project %s); refusing to connect", ErrNoHostCert, c.srv.Name, c.srv.Project)
		}
		if errors.Is(err, ErrTargetIdentity) || isHostKeyError(err) {
			return nil, fmt.Errorf("%w (%s); refusing to connect", ErrTargetIdentity, c.srv.Name)
		}
		return nil, &reasoned{msg: fmt.Sprintf("%s refused the login %q", c.srv.Name, login), reason: errTargetRefused}
	}
	return &targetConn{Conn: sc, chans: chans, reqs: reqs, certSerial: cert.Serial, certKeyID: cert.KeyId}, nil
}

// targetConn is the connection to a target with its incoming channels and
// global requests, which the bridge's loop serves itself (x/crypto's Client
// would spend two goroutines per connection on them).
type targetConn struct {
	gossh.Conn
	chans <-chan gossh.NewChannel
	reqs  <-chan *gossh.Request
	// certSerial and certKeyID are the per-hop certificate's the
	// connection logged in with: session.open names them, and so does the
	// target's sshd in the login it logs (sshd_login.accept).
	certSerial uint64
	certKeyID  string
}

// hostKeyAlgorithms asks the target for a host certificate first, then for a
// plain key of a type that was pinned at enrollment: a target offering
// several key types must present one we can check.
func hostKeyAlgorithms(pinned []gossh.PublicKey) []string {
	algos := []string{
		gossh.CertAlgoED25519v01, gossh.CertAlgoECDSA256v01, gossh.CertAlgoECDSA384v01, gossh.CertAlgoECDSA521v01,
		gossh.CertAlgoRSASHA512v01, gossh.CertAlgoRSASHA256v01,
	}
	for _, k := range pinned {
		switch t := k.Type(); t {
		case gossh.KeyAlgoRSA:
			algos = append(algos, gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

func isHostKeyError(err error) bool {
	msg := err.Error()
	return bytes.Contains([]byte(msg), []byte("host key")) || bytes.Contains([]byte(msg), []byte("ssh: certificate"))
}
