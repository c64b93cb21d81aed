package enroll

import (
	"context"
	"fmt"
	"net/http"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// RenewHostCerts certifies the host keys pinned for an enrolled server again
// (the caller has verified its agent's certificate). The keys are the ones
// recorded at enrollment, whatever the agent might claim now.
func (s *Service) RenewHostCerts(ctx context.Context, srv *raftstore.Server) (*api.AgentHostCertsResponse, error) {
	var keys []gossh.PublicKey
	for _, line := range srv.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("server %s: pinned host key: %w", srv.ID, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fault.Errorf(http.StatusConflict, "server %s has no pinned host keys to certify", srv.Name)
	}
	certs, caKey, err := s.certs.TargetHostCerts(srv, keys, s.hostCertTTL())
	if err != nil {
		return nil, err
	}
	fields := map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "validity": s.hostCertTTL().String()}
	if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(caKey)); err == nil {
		fields["host_ca"] = gossh.FingerprintSHA256(k)
	}
	s.audit.Record(EventHostCertRenew, "agent", fields)
	s.logger.Info("renewed host certificates", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "certificates", len(certs))
	return &api.AgentHostCertsResponse{HostCerts: certs, HostCAKey: caKey}, nil
}

// hostCertTTL is how long target host certificates are valid
// (agents.host_cert_validity).
func (s *Service) hostCertTTL() time.Duration {
	if v := s.cfg.HostCertValidity; v > 0 {
		return v
	}
	return targetHostCertValidity
}

// RenewAgent issues an enrolled server's agent a fresh certificate for a new
// public key (httpapi has checked its kind and size). The caller has verified
// the agent's current certificate and that its server is still enrolled from
// the same machine, and has already made the new key the server's agent key
// (raftstore.ServerAgentKey, which kills the old certificate): renewal never
// creates an identity, only extends one.
func (s *Service) RenewAgent(ctx context.Context, srv *raftstore.Server, req *api.AgentRenewRequest) (*api.AgentRenewResponse, error) {
	pub, err := ca.ParsePublicKeyPEM(req.PublicKey)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	certPEM, err := s.issueTLS(api.RoleAgent, srv.ID, pub, nil, nil, s.agentCertTTL())
	if err != nil {
		return nil, err
	}
	cert, err := api.ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	s.audit.Record(EventAgentCertRenew, "agent", map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project})
	s.logger.Info("renewed agent certificate", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "not_after", cert.NotAfter)
	return &api.AgentRenewResponse{CertPEM: string(certPEM), CertExpires: cert.NotAfter.UTC()}, nil
}

// agentCertTTL is how long agent certificates are valid (agents.cert_validity).
func (s *Service) agentCertTTL() time.Duration {
	if v := s.cfg.AgentCertValidity; v > 0 {
		return v
	}
	return agentCertValidity
}
