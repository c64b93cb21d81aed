package enroll

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// admitAWS verifies the request's AWS instance identity document, and that
// the request's addr is the instance's private IP it names.
func (s *Service) admitAWS(req *api.EnrollRequest) (*admission, error) {
	cfg := s.cfg.AWS
	if cfg.CertsFile == "" {
		return nil, fault.Errorf(http.StatusForbidden, "this cluster does not accept AWS auto-enrollment (node %s has no agents.aws configuration): enroll with a token", s.cfg.NodeID)
	}
	if err := checkCloudSSHPort(req); err != nil {
		return nil, s.refuseClaim(req, err)
	}
	// Parsed again only when the file changes, so that an operator adding a
	// region's certificate needs no restart.
	certs, err := s.cloud.awsCertificates(cfg.CertsFile)
	if err != nil {
		return nil, fmt.Errorf("agents.aws.certs_file %s: %w", cfg.CertsFile, err)
	}
	v := &cloudid.AWSVerifier{Certificates: certs, Accounts: cfg.Accounts, MaxAge: cfg.MaxAge, Now: s.now}
	id, err := v.Verify(cloudid.AWSEvidence{Document: []byte(req.AWSDocument), Signature: req.AWSSignature, PKCS7: req.AWSPKCS7})
	if err != nil {
		return nil, s.refuseCloud(req, err)
	}
	s.logger.Info("verified AWS instance identity", "server_name", req.Name, "account", id.AccountID, "instance_id", id.InstanceID,
		"region", id.Region, "pending_time", id.PendingTime, "private_ip", id.PrivateIP, "project", id.Project)
	if err := checkAWSAddr(req, id); err != nil {
		return nil, s.refuseClaim(req, err)
	}
	return s.admitInstance(req, raftstore.EnrollAWS, id.Project, id.InstanceID, cfg.AllowReenroll, "agents.aws.allow_reenroll")
}

// admitGCP verifies the request's GCP instance identity token. The token
// names no IP address: the request's addr is taken as it is (docs/agent.md,
// "Threat model").
func (s *Service) admitGCP(ctx context.Context, req *api.EnrollRequest) (*admission, error) {
	cfg := s.cfg.GCP
	if cfg.Audience == "" {
		return nil, fault.Errorf(http.StatusForbidden, "this cluster does not accept GCP auto-enrollment (node %s has no agents.gcp configuration): enroll with a token", s.cfg.NodeID)
	}
	if err := checkCloudSSHPort(req); err != nil {
		return nil, s.refuseClaim(req, err)
	}
	// One verifier per node: it discovers the issuer once and bounds how
	// often it fetches the issuer's keys, whatever tokens are POSTed.
	id, err := s.cloud.gcpVerifier(cfg, s.now).Verify(ctx, req.GCPToken)
	if err != nil {
		return nil, s.refuseCloud(req, err)
	}
	s.logger.Info("verified GCP instance identity", "server_name", req.Name, "gcp_project", id.ProjectID, "instance_id", id.InstanceID,
		"instance_name", id.InstanceName, "zone", id.Zone, "created", id.CreatedAt, "project", id.Project)
	return s.admitInstance(req, raftstore.EnrollGCP, id.Project, id.InstanceID, cfg.AllowReenroll, "agents.gcp.allow_reenroll")
}

// refuseCloud logs a refused cloud identity in full and answers with its
// reason only.
func (s *Service) refuseCloud(req *api.EnrollRequest, err error) error {
	var ce *cloudid.Error
	if !errors.As(err, &ce) {
		return err
	}
	s.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "addr", req.Addr, "err", err)
	status := http.StatusForbidden
	switch {
	case errors.Is(err, cloudid.ErrMalformed):
		status = http.StatusBadRequest
	case errors.Is(err, cloudid.ErrUnavailable):
		status = http.StatusServiceUnavailable
	}
	return fault.Errorf(status, "%s", ce.Reason)
}

// refuseClaim logs a cloud enrollment refused for what it claims beyond
// its identity (its port, address or names), and returns err.
func (s *Service) refuseClaim(req *api.EnrollRequest, err error) error {
	s.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "addr", req.Addr, "ssh_port", req.SSHPort, "err", err)
	return err
}

// admitInstance gives a verified cloud instance its server id: a new one,
// or (when re-enrollment is allowed) the one it enrolled as before, provided
// the request keeps that server's names and address. An instance enrolled
// already is refused otherwise. The store's unique instance index settles a
// race between two enrollments of one instance.
func (s *Service) admitInstance(req *api.EnrollRequest, method, project, instanceID string, allowReenroll bool, key string) (*admission, error) {
	adm := &admission{project: project, method: method, instanceID: instanceID}
	_, srv, err := s.store.State().ServerByInstance(nil, instanceID)
	if err != nil {
		return nil, err
	}
	switch {
	case srv == nil:
		adm.serverID = newServerID()
	case allowReenroll:
		if err := checkReenroll(req, srv, instanceID); err != nil {
			return nil, s.refuseClaim(req, err)
		}
		adm.serverID = srv.ID
		s.logger.Info("instance enrolls again", "method", method, "instance_id", instanceID, "server", srv.Name, "server_id", srv.ID)
	default:
		s.logger.Warn("refused enrollment: instance already enrolled", "method", method, "server_name", req.Name,
			"instance_id", instanceID, "server", srv.Name, "server_id", srv.ID)
		return nil, fault.Errorf(http.StatusForbidden, "instance %s is already enrolled as server %s (%s): an instance enrolls once; "+
			"delete that server (servers delete %s) to enroll it again, or set %s", instanceID, srv.Name, srv.ID, srv.Name, key)
	}
	return adm, nil
}
