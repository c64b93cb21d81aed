package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// hostCertsRenewAt is when the server's host certificates must be renewed,
// and why: at once when one does not parse or when a CA other than hostCA
// (the one the cluster signs with now; empty: unknown) signed it, as after a
// host CA rotation; otherwise when two thirds of the shortest-lived one's
// lifetime have passed, counted from obtained (when the agent received them;
// zero: from their start). No certificates: the zero time, nothing to renew.
func hostCertsRenewAt(certs []string, obtained time.Time, hostCA string) (time.Time, string) {
	var current ssh.PublicKey
	if hostCA != "" {
		current, _, _, _, _ = ssh.ParseAuthorizedKey([]byte(hostCA))
	}
	var at time.Time
	for _, line := range certs {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		cert, ok := pub.(*ssh.Certificate)
		if err != nil || !ok {
			return time.Unix(0, 0), "a host certificate does not parse"
		}
		if current != nil && !bytes.Equal(cert.SignatureKey.Marshal(), current.Marshal()) {
			return time.Unix(0, 0), "a host certificate is signed by a host CA the cluster no longer signs with"
		}
		start := time.Unix(int64(cert.ValidAfter), 0)
		if obtained.After(start) {
			start = obtained
		}
		if due := api.RenewAt(start, time.Unix(int64(min(cert.ValidBefore, 1<<62)), 0)); at.IsZero() || due.Before(at) {
			at = due
		}
	}
	return at, "two thirds of the host certificates' lifetime have passed"
}

// hostCertRenewer renews the server's host certificates over the agent's
// mutual-TLS channel when hostCertsRenewAt says so. Renewed certificates
// are stored in identity.json; the pull loop then applies the state again,
// which writes them for sshd and reloads it.
type hostCertRenewer struct {
	id      *Identity
	dataDir string
	// cluster is the puller's client: it follows the nodes the puller
	// learns of.
	cluster  *client.Client
	logger   *slog.Logger
	now      func() time.Time
	failures int
	retryAt  time.Time
}

func newHostCertRenewer(p *Puller, dataDir string, logger *slog.Logger) *hostCertRenewer {
	return &hostCertRenewer{id: p.id, dataDir: dataDir, cluster: p.cluster, logger: logger, now: time.Now}
}

// deadline is when the pull loop must stop waiting to renew; zero: never.
func (h *hostCertRenewer) deadline(hostCA string) time.Time {
	at, _ := hostCertsRenewAt(h.id.HostCerts, h.id.HostCertsObtained, hostCA)
	if at.IsZero() || h.failures == 0 {
		return at
	}
	return h.retryAt
}

// maybeRenew renews the host certificates if they are due (and a failed
// attempt's retry is), and reports whether they changed.
func (h *hostCertRenewer) maybeRenew(ctx context.Context, hostCA string) bool {
	now := h.now()
	at, reason := hostCertsRenewAt(h.id.HostCerts, h.id.HostCertsObtained, hostCA)
	if at.IsZero() || now.Before(at) || h.failures > 0 && now.Before(h.retryAt) {
		return false
	}
	h.logger.Info("renewing the host certificates", "reason", reason, "server_id", h.id.ServerID)
	certs, err := h.renewOnce(ctx, now)
	if err != nil {
		h.failures++
		left := time.Duration(0)
		if exp := earliestExpiry(h.id.HostCerts); !exp.IsZero() {
			left = exp.Sub(now)
		}
		h.retryAt = now.Add(retryDelay(h.failures, left))
		h.logger.Warn("host certificate renewal failed; retrying", "attempt", h.failures, "retry_at", h.retryAt.UTC(), "err", err)
		return false
	}
	h.failures = 0
	h.id.HostCerts, h.id.HostCertsObtained = certs, now
	h.logger.Info("renewed the host certificates", "server_id", h.id.ServerID, "expires", earliestExpiry(certs).UTC())
	return true
}

// renewOnce asks the cluster for new host certificates, checks them and
// stores them in identity.json.
func (h *hostCertRenewer) renewOnce(ctx context.Context, now time.Time) ([]string, error) {
	// Each node is asked once until one answers.
	resp, err := h.cluster.RenewHostCerts(ctx)
	if err != nil {
		return nil, err
	}
	if len(resp.HostCerts) == 0 {
		return nil, errors.New("the cluster sent no host certificates")
	}
	if err := checkHostCerts(*resp, now); err != nil {
		return nil, fmt.Errorf("the cluster's host certificates: %w", err)
	}
	if err := h.store(resp.HostCerts, now); err != nil {
		return nil, fmt.Errorf("store the host certificates: %w", err)
	}
	return resp.HostCerts, nil
}

// checkHostCerts accepts only host certificates signed by the CA the
// answer names, valid now.
func checkHostCerts(resp api.AgentHostCertsResponse, now time.Time) error {
	caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.HostCAKey))
	if err != nil {
		return fmt.Errorf("host CA key: %w", err)
	}
	checker := ssh.CertChecker{Clock: func() time.Time { return now }}
	for i, line := range resp.HostCerts {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		cert, ok := pub.(*ssh.Certificate)
		switch {
		case err != nil || !ok || cert.CertType != ssh.HostCert:
			return fmt.Errorf("certificate %d is not a host certificate", i+1)
		case !bytes.Equal(cert.SignatureKey.Marshal(), caKey.Marshal()):
			return fmt.Errorf("certificate %d is not signed by the host CA", i+1)
		case len(cert.ValidPrincipals) == 0:
			return fmt.Errorf("certificate %d names no host", i+1)
		}
		if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
			return fmt.Errorf("certificate %d: %w", i+1, err)
		}
	}
	return nil
}

// store writes the certificates into identity.json, as read from disk (the
// identity in memory may hold cluster addresses from the configuration).
func (h *hostCertRenewer) store(certs []string, now time.Time) error {
	stored, err := LoadIdentity(h.dataDir)
	if err != nil {
		return err
	}
	if stored == nil {
		return fmt.Errorf("%s is gone", filepath.Join(h.dataDir, identityFile))
	}
	stored.HostCerts, stored.HostCertsObtained = certs, now.UTC()
	b, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return err
	}
	return writeSynced(filepath.Join(h.dataDir, identityFile), b)
}

// earliestExpiry is when the first of the certificates expires; zero when
// none parses.
func earliestExpiry(certs []string) time.Time {
	var first time.Time
	for _, line := range certs {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if cert, ok := pub.(*ssh.Certificate); err == nil && ok {
			if t := time.Unix(int64(min(cert.ValidBefore, 1<<62)), 0); first.IsZero() || t.Before(first) {
				first = t
			}
		}
	}
	return first
}
