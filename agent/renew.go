package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// A renewal writes the new pair beside the old one first (agent.crt.next,
// agent.key.next), then renames the key and then the certificate into place.
// LoadCredential finishes a renewal interrupted between those steps, so the
// files on disk always hold a matching pair.
const nextSuffix = ".next"

// pendingSuffix names the key of a renewal in flight (agent.key.pending).
// The cluster makes the new key the server's agent key before it answers,
// and from then on refuses the old certificate, except to ask again for
// the new key's certificate. So the key is on disk before the request
// leaves: an agent whose answer was lost, or that crashed waiting for it,
// asks again with the same key. It is removed once the renewed pair is in
// place, or when the cluster refuses the renewal.
const pendingSuffix = ".pending"

const (
	// renewCheckEvery bounds how long the renewer sleeps at a time, so a
	// suspended machine or a clock step is noticed.
	renewCheckEvery = time.Hour
	// renewRetryMax bounds the wait between failed renewals.
	renewRetryMax = 5 * time.Minute
)

// Credential is the agent's mutual-TLS key pair, shared by the pull loop and
// the renewer: a renewal replaces it on disk and in memory, and every TLS
// handshake after that presents the new certificate (GetClientCertificate),
// without a restart.
type Credential struct {
	dataDir string

	mu   sync.RWMutex
	pair *tls.Certificate // Leaf is set
	// obtained is when the agent received the certificate: a lifetime is
	// counted from there (NotBefore is backdated to absorb clock skew).
	obtained time.Time
	// gen counts replacements, so connections made with an older
	// certificate can be retired.
	gen atomic.Uint64
	// refused carries the generation of a certificate the cluster refused
	// (HTTP 401: replaced or expired) to the renewer, which renews at once
	// to find out whether the agent must enroll again.
	refused chan uint64
}

// LoadCredential reads agent.crt and agent.key from dataDir, first finishing
// a renewal that was interrupted between writing and renaming.
func LoadCredential(dataDir string) (*Credential, error) {
	if err := finishRenewal(dataDir); err != nil {
		return nil, fmt.Errorf("agent credential: finish an interrupted renewal: %w", err)
	}
	crtPath := filepath.Join(dataDir, certFile)
	pair, err := tls.LoadX509KeyPair(crtPath, filepath.Join(dataDir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("agent credential: %w", err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("agent credential: %w", err)
		}
	}
	obtained := pair.Leaf.NotBefore
	if fi, err := os.Stat(crtPath); err == nil && fi.ModTime().After(obtained) {
		obtained = fi.ModTime()
	}
	return &Credential{dataDir: dataDir, pair: &pair, obtained: obtained, refused: make(chan uint64, 1)}, nil
}

// finishRenewal completes or discards a renewal a crash interrupted. The
// staged files are complete when they exist (each was written to a temporary
// file and renamed); the key is committed before the certificate.
func finishRenewal(dataDir string) error {
	crt, key := filepath.Join(dataDir, certFile), filepath.Join(dataDir, keyFile)
	_, errCrt := os.Stat(crt + nextSuffix)
	_, errKey := os.Stat(key + nextSuffix)
	switch {
	case errCrt == nil && errKey == nil:
		// Both staged, neither committed: commit.
		if err := os.Rename(key+nextSuffix, key); err != nil {
			return err
		}
	case errKey == nil:
		// A key without its certificate cannot be used.
		return os.Remove(key + nextSuffix)
	case errCrt != nil:
		return nil
	}
	// The certificate is staged: it is committed if the key in place is
	// its key (the key was renamed first), else it is left over from a
	// renewal that never got as far as its key.
	if _, err := tls.LoadX509KeyPair(crt+nextSuffix, key); err != nil {
		return os.Remove(crt + nextSuffix)
	}
	if err := os.Rename(crt+nextSuffix, crt); err != nil {
		return err
	}
	return syncDir(dataDir)
}

// clientCertificate is the tls.Config.GetClientCertificate hook.
func (c *Credential) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pair, nil
}

// current returns the certificate and when the agent received it.
func (c *Credential) current() (*x509.Certificate, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pair.Leaf, c.obtained
}

// generation changes each time the credential is replaced.
func (c *Credential) generation() uint64 { return c.gen.Load() }

// reportRefused tells the renewer that the cluster refused the certificate
// of generation gen as replaced or expired. It never blocks.
func (c *Credential) reportRefused(gen uint64) {
	select {
	case c.refused <- gen:
	default: // one report pending is enough
	}
}

func (c *Credential) pendingPath() string { return filepath.Join(c.dataDir, keyFile+pendingSuffix) }

// pendingKey returns the key of a renewal that may have reached the
// cluster, or nil. A pending key that is already the current certificate's
// (the agent stopped after storing the renewal) is removed, and so is one
// that does not parse (it was written through a rename: not the agent's).
func (c *Credential) pendingKey() (crypto.Signer, error) {
	data, err := os.ReadFile(c.pendingPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := api.ParseKeyPEM(data)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", c.pendingPath(), err), c.dropPendingKey())
	}
	leaf, _ := c.current()
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(key.Public()) {
		return nil, c.dropPendingKey()
	}
	return key, nil
}

// storePendingKey puts key on disk, flushed, before it is sent.
func (c *Credential) storePendingKey(key crypto.Signer) error {
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeSynced(c.pendingPath(), keyPEM); err != nil {
		return err
	}
	return syncDir(c.dataDir)
}

// dropPendingKey forgets the key of the renewal in flight.
func (c *Credential) dropPendingKey() error {
	if err := os.Remove(c.pendingPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(c.dataDir)
}

// replace stores a new pair on disk (staged, then renamed key first) and
// makes it the one presented from now on.
func (c *Credential) replace(certPEM, keyPEM []byte, now time.Time) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return err
		}
	}
	crt, key := filepath.Join(c.dataDir, certFile), filepath.Join(c.dataDir, keyFile)
	if err := writeSynced(crt+nextSuffix, certPEM); err != nil {
		return err
	}
	if err := writeSynced(key+nextSuffix, keyPEM); err != nil {
		return err
	}
	if err := syncDir(c.dataDir); err != nil {
		return err
	}
	if err := os.Rename(key+nextSuffix, key); err != nil {
		return err
	}
	if err := os.Rename(crt+nextSuffix, crt); err != nil {
		return err
	}
	if err := syncDir(c.dataDir); err != nil {
		return err
	}
	c.mu.Lock()
	c.pair, c.obtained = &pair, now
	c.mu.Unlock()
	c.gen.Add(1)
	return nil
}

// writeSynced writes data to path (mode 0600) through a temporary file that
// is flushed to disk before it is renamed.
func writeSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// renewAt is when a certificate received at obtained is renewed: after two
// thirds of its remaining lifetime.
func renewAt(leaf *x509.Certificate, obtained time.Time) time.Time {
	if obtained.After(leaf.NotAfter) {
		return leaf.NotAfter
	}
	return obtained.Add(leaf.NotAfter.Sub(obtained) * 2 / 3)
}

// retryDelay is the wait before the next attempt after failures failed
// renewals: doubling from one second, at most renewRetryMax and a quarter of
// what is left of the certificate, so that several attempts fit before it
// expires.
func retryDelay(failures int, left time.Duration) time.Duration {
	d := time.Second << min(failures-1, 16)
	return max(min(d, renewRetryMax, left/4), 100*time.Millisecond)
}

// Renewer renews the agent's certificate over its own mutual-TLS channel
// when two thirds of the certificate's lifetime have passed. The cluster
// refuses a removed server, one enrolled from another machine, and a
// certificate that has already expired; then the agent must enroll again.
type Renewer struct {
	cred *Credential
	// cluster is the puller's client: it follows the nodes the puller
	// learns of and presents the current certificate.
	cluster  *client.Client
	serverID string
	roots    *x509.CertPool
	logger   *slog.Logger
	// now, after and newKey are fields so that tests control time and keys.
	now    func() time.Time
	after  func(time.Duration) <-chan time.Time
	newKey func() (crypto.Signer, error)
}

// NewRenewer builds the renewer of the credential a Puller uses, sharing its
// client of the cluster.
func (p *Puller) NewRenewer(dataDir string, logger *slog.Logger) (*Renewer, error) {
	roots, err := clusterRoots(dataDir)
	if err != nil {
		return nil, err
	}
	return &Renewer{cred: p.cred, cluster: p.cluster,
		serverID: p.id.ServerID, roots: roots, logger: logger,
		now: time.Now, after: time.After,
		newKey: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	}, nil
}

// Run renews whenever the certificate is due, until ctx ends (nil). It
// returns an error wrapping ErrReenroll when the cluster no longer accepts
// this agent or the certificate expired before it could be renewed.
func (r *Renewer) Run(ctx context.Context) error {
	failures := 0
	for {
		leaf, obtained := r.cred.current()
		now := r.now()
		if !now.Before(leaf.NotAfter) {
			return fmt.Errorf("%w: the agent certificate expired at %s before it could be renewed", ErrReenroll, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		wait := renewAt(leaf, obtained).Sub(now)
		if pending, err := r.cred.pendingKey(); err != nil {
			r.logger.Warn("discarding the key of an earlier renewal", "err", err)
		} else if pending != nil {
			// An earlier renewal may have reached the cluster, which then
			// accepts the current certificate for nothing but finishing it.
			wait = 0
		}
		if failures > 0 {
			wait = retryDelay(failures, leaf.NotAfter.Sub(now))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case gen := <-r.cred.refused:
				if gen != r.cred.generation() {
					continue // refused before the last renewal
				}
				r.logger.Warn("the cluster refused the agent certificate; renewing now to find out whether it was replaced")
			case <-r.after(min(wait, renewCheckEvery)):
				if failures == 0 || wait > renewCheckEvery {
					continue // look again: the time may have jumped
				}
			}
		}
		err := r.renewOnce(ctx)
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, ErrReenroll):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			r.logger.Warn("agent certificate renewal failed; retrying", "expires", leaf.NotAfter.UTC(), "attempt", failures, "err", err)
		}
	}
}

// renewOnce has the cluster certify a new key pair and replaces the
// credential. The key is the pending one of an earlier attempt if there is
// one (see pendingSuffix), else a new one, stored as pending first.
func (r *Renewer) renewOnce(ctx context.Context) error {
	if len(r.cluster.Addrs()) == 0 {
		return client.ErrNoAddress
	}
	key, err := r.cred.pendingKey()
	if err != nil {
		r.logger.Warn("discarding the key of an earlier renewal", "err", err)
	}
	if key != nil {
		r.logger.Info("asking again for the certificate of an earlier renewal's key", "server_id", r.serverID)
	} else {
		if key, err = r.newKey(); err != nil {
			return fmt.Errorf("generate key: %w", err)
		}
		if err := r.cred.storePendingKey(key); err != nil {
			return fmt.Errorf("store the new key: %w", err)
		}
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	// Each node is asked once; a refusal ends the round.
	resp, err := r.cluster.RenewAgentCert(ctx, &api.AgentRenewRequest{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))})
	var he *client.Error
	if errors.As(err, &he) && he.Status/100 == 4 {
		// Refused, not failed: the cluster has not recorded this key,
		// and never will.
		if err := r.cred.dropPendingKey(); err != nil {
			r.logger.Warn("could not remove the refused renewal key", "err", err)
		}
		switch he.Status {
		case http.StatusGone, http.StatusConflict, http.StatusUnauthorized:
			// Removed, cloned, or replaced by a newer renewal or
			// enrollment (or expired).
			return fmt.Errorf("%w: %s", ErrReenroll, he.Message)
		}
		return err
	}
	if err != nil {
		return err
	}
	cert, err := r.check([]byte(resp.CertPEM), key.Public())
	if err != nil {
		return fmt.Errorf("the cluster's new certificate: %w", err)
	}
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := r.cred.replace([]byte(resp.CertPEM), keyPEM, r.now()); err != nil {
		return fmt.Errorf("store the new certificate: %w", err)
	}
	if err := r.cred.dropPendingKey(); err != nil {
		// Harmless: pendingKey removes it once it is the current key.
		r.logger.Warn("could not remove the renewal's pending key", "err", err)
	}
	// Pooled connections still present the old certificate, which the
	// cluster now refuses: the clients of the puller and the event sender
	// retire them before their next request, by generation.
	r.logger.Info("renewed the agent certificate", "server_id", r.serverID, "expires", cert.NotAfter.UTC())
	return nil
}

// check accepts a new certificate only if it is for this server's agent and
// the key just generated, and chains to the cluster CA the agent trusts.
func (r *Renewer) check(certPEM []byte, pub crypto.PublicKey) (*x509.Certificate, error) {
	cert, err := api.ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if role, id, ok := api.Identity(cert); !ok || role != api.RoleAgent || id != r.serverID {
		return nil, fmt.Errorf("it names %s %q, not this agent (%s)", role, id, r.serverID)
	}
	if k, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(pub) {
		return nil, errors.New("it is not for the key the agent sent")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: r.roots, CurrentTime: r.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, err
	}
	return cert, nil
}

// startRenewal runs p's renewer beside the pull loop. The context it returns
// is cancelled, with the renewer's error as its cause, when renewal fails for
// good; stop ends the renewer and waits for it.
func startRenewal(ctx context.Context, p *Puller, dataDir string, logger *slog.Logger) (context.Context, func(), error) {
	r, err := p.NewRenewer(dataDir, logger)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			cancel(err)
		}
	}()
	return ctx, func() { cancel(context.Canceled); <-done }, nil
}

// stopCause is why ctx ended: nil for an ordinary stop, the renewer's error
// when it gave up.
func stopCause(ctx context.Context) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return nil
	}
	return cause
}
