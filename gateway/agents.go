package gateway

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
)

const (
	// agentCertValidity: agents renew their certificate well before this.
	agentCertValidity = 30 * 24 * time.Hour
	// targetHostCertValidity: agents renew their host certificates when
	// two thirds of this have passed (agents.host_cert_validity).
	targetHostCertValidity = 90 * 24 * time.Hour
)

// Enroll admits a server whose agent proves where it belongs: with an
// enrollment token (one use spent; the token names the project), or with
// its cloud's signed instance identity (AWS, GCP; the account or project
// mapping names the project, and an instance enrolls once). It registers
// the server and returns the agent's TLS certificate, host certificates for
// the server's host keys, and the project's user CA keys.
func (c clusterService) Enroll(ctx context.Context, req *api.EnrollRequest) (*api.EnrollResponse, error) {
	keys, err := parseEnrollKeys(req)
	if err != nil {
		return nil, err
	}
	// Before the token is spent: the address is refused however the
	// server proves where it belongs.
	port := req.SSHPort
	if port == 0 {
		port = raftstore.DefaultSSHPort
	}
	rule := c.n.targetRule()
	if err := rule.CheckHost(req.Addr, port); err != nil {
		return nil, c.refuseName(req, "", req.Addr, "address not allowed",
			httpapi.Errorf(http.StatusBadRequest, "cannot enroll a server at %s port %d: %v", req.Addr, port, err))
	}
	now := c.n.now().UTC()
	var adm *admission
	switch req.Method {
	case api.EnrollToken:
		adm, err = c.admitToken(ctx, req, keys, now)
	case api.EnrollAWS:
		adm, err = c.admitAWS(req)
	case api.EnrollGCP:
		adm, err = c.admitGCP(ctx, req)
	default:
		return nil, httpapi.Errorf(http.StatusBadRequest, "enrollment method %q is not token, aws or gcp", req.Method)
	}
	if err != nil {
		return nil, err
	}
	if err := c.checkTargetNames(req, adm.project); err != nil {
		return nil, err
	}
	return c.register(ctx, req, keys, adm, now)
}

// enrollKeys are the keys of an enrollment request, parsed.
type enrollKeys struct {
	hostKeys []gossh.PublicKey
	agent    crypto.PublicKey
}

// parseEnrollKeys checks what every enrollment carries, whatever its method.
func parseEnrollKeys(req *api.EnrollRequest) (*enrollKeys, error) {
	if req.MachineID == "" || len(req.MachineID) > 128 || strings.ContainsAny(req.MachineID, " \t\r\n/") {
		return nil, httpapi.Errorf(http.StatusBadRequest, "machine_id is missing or malformed")
	}
	if ip := net.ParseIP(req.Addr); ip == nil || ip.IsUnspecified() {
		return nil, httpapi.Errorf(http.StatusBadRequest, "addr %q must be the IP address the bastion dials", req.Addr)
	}
	var keys enrollKeys
	for _, line := range req.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "host key %q is not in authorized_keys format", line)
		}
		if _, isCert := k.(*gossh.Certificate); isCert {
			return nil, httpapi.Errorf(http.StatusBadRequest, "host keys must be plain keys, not certificates")
		}
		keys.hostKeys = append(keys.hostKeys, k)
	}
	if len(keys.hostKeys) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, "at least one host key is required")
	}
	block, _ := pem.Decode([]byte(req.PublicKey))
	if block == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not a PKIX public key")
	}
	keys.agent = pub
	return &keys, nil
}

// admission is what an enrollment method decided: which project the server
// joins, under which id.
type admission struct {
	project  string
	serverID string
	// method is raftstore's EnrollToken, EnrollAWS or EnrollGCP.
	method string
	// instanceID is the cloud instance id (cloud methods only).
	instanceID string
}

// admitToken spends one use of the request's enrollment token, once the
// request has passed every check that can be made before registering it: a
// request that would be refused anyway (a malformed name or label, a name
// another server holds) does not cost a use.
func (c clusterService) admitToken(ctx context.Context, req *api.EnrollRequest, keys *enrollKeys, now time.Time) (*admission, error) {
	n := c.n
	hash := api.HashSecret(req.Secret)
	refused := func(err error) error {
		n.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "err", err)
		switch {
		case errors.Is(err, raftstore.ErrExpired):
			return httpapi.Errorf(http.StatusForbidden, "enrollment token has expired")
		case errors.Is(err, raftstore.ErrNotFound), errors.Is(err, raftstore.ErrExhausted), errors.Is(err, raftstore.ErrInvalid):
			return httpapi.Errorf(http.StatusForbidden, "enrollment token is not valid for this cluster (unknown, revoked or used up)")
		}
		return err
	}
	// The local replica names the token's project, so that the request is
	// checked before a use is spent; the use below checks the token again on
	// the leader. A token this replica does not know (yet) or holds as
	// unusable goes straight to the leader, which decides; a caller without
	// a usable token learns nothing about the project's servers.
	_, peek, err := n.store.State().TokenByHash(nil, hash)
	if err != nil {
		return nil, err
	}
	var adm *admission
	if peek != nil && peek.Kind == raftstore.TokenEnroll && peek.UsesLeft != 0 && (peek.ExpiresAt.IsZero() || now.Before(peek.ExpiresAt)) {
		adm = &admission{project: peek.Project, serverID: newServerID(), method: raftstore.EnrollToken}
		if taken := c.enrolledAs(req); taken != nil {
			return nil, c.refuseTaken(req, peek.Project, taken.Name)
		}
		if err := c.precheck(req, keys, adm, now); err != nil {
			n.logger.Warn("refused enrollment before spending its token", "method", req.Method, "server_name", req.Name, "project", adm.project, "err", err)
			return nil, err
		}
		if err := c.checkTargetNames(req, peek.Project); err != nil {
			return nil, err
		}
	}
	res, err := n.store.Apply(ctx, &raftstore.TokenUse{Hash: hash, Kind: raftstore.TokenEnroll, Now: now})
	if err != nil {
		return nil, refused(err)
	}
	var tok raftstore.Token
	if err := res.Decode(&tok); err != nil {
		return nil, err
	}
	// A token enrolls new servers only. Knowing an enrolled server's name
	// and machine id (/etc/machine-id is world-readable) proves nothing, so
	// a second enrollment under a name that is taken is refused, never
	// allowed to move that server's address, host keys or agent key.
	if taken := c.enrolledAs(req); taken != nil {
		return nil, c.refuseTaken(req, tok.Project, taken.Name)
	}
	if adm == nil || adm.project != tok.Project {
		adm = &admission{project: tok.Project, serverID: newServerID(), method: raftstore.EnrollToken}
	}
	return adm, nil
}

// enrolledAs returns the enrolled server that already answers to the name
// or one of the alt names req asks for, or nil.
func (c clusterService) enrolledAs(req *api.EnrollRequest) *raftstore.Server {
	st := c.n.store.State()
	for _, name := range append([]string{req.Name}, req.AltNames...) {
		if _, srv, err := st.ServerByAddress(nil, name); err == nil && srv != nil &&
			(srv.Name == strings.ToLower(name) || slices.Contains(srv.AltNames, strings.ToLower(name))) {
			return srv
		}
	}
	return nil
}

// refuseTaken audits and refuses an enrollment under a name an enrolled
// server holds.
func (c clusterService) refuseTaken(req *api.EnrollRequest, project, server string) error {
	return c.refuseName(req, project, server, "name already enrolled", httpapi.Errorf(http.StatusConflict,
		"server %s is already enrolled: a server enrolls once. To enroll it again (reinstalled, new host keys or address), "+
			"an administrator deletes it first (servers delete %s)", server, server))
}

// precheck refuses, without writing anything, a registration that register
// would refuse: the record's form, a project that is gone, and a name
// another server holds.
func (c clusterService) precheck(req *api.EnrollRequest, keys *enrollKeys, adm *admission, now time.Time) error {
	cmd, err := serverUpsertFor(req, keys, adm, now)
	if err != nil {
		return err
	}
	if err := cmd.Validate(); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	st := c.n.store.State()
	if _, p, err := st.ProjectByName(nil, adm.project); err != nil {
		return err
	} else if p == nil {
		return httpapi.Errorf(http.StatusForbidden, "project %s does not exist: create it before servers enroll into it", adm.project)
	}
	if err := st.CheckServerNames(cmd.Server); err != nil {
		c.n.logger.Warn("enrollment asks for a name or address another server holds", "server_name", raftstore.ClientText(req.Name), "project", adm.project, "err", err)
		// Audited like a name already enrolled, and as terse: the answer
		// must not name another project's server.
		return c.refuseName(req, adm.project, req.Name, "name or address taken", httpapi.Errorf(http.StatusConflict,
			"a name or address this enrollment asks for belongs to another server; an administrator can tell which (audit server.enroll_refused)"))
	}
	return nil
}

// serverUpsertFor is the registration of an admitted server.
func serverUpsertFor(req *api.EnrollRequest, keys *enrollKeys, adm *admission, now time.Time) (*raftstore.ServerUpsert, error) {
	var hostKeys []string
	for _, k := range keys.hostKeys {
		hostKeys = append(hostKeys, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))))
	}
	port := req.SSHPort
	if port == 0 {
		port = raftstore.DefaultSSHPort
	}
	agentKey, err := raftstore.HashAgentKey(keys.agent)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key: %v", err)
	}
	// SetAgentKey: the certificate register issues is the only one of this
	// server the cluster accepts from then on (a re-enrollment kills the
	// certificates of the earlier one).
	return &raftstore.ServerUpsert{Server: raftstore.Server{
		ID: adm.serverID, Project: adm.project, Name: req.Name, AltNames: req.AltNames, Addr: req.Addr, SSHPort: port,
		HostKeys: hostKeys, Labels: req.Labels, EnrollMethod: adm.method, MachineID: req.MachineID, InstanceID: adm.instanceID,
		AgentKeyHash: agentKey,
	}, SetAgentKey: true, Now: now}, nil
}

// register records the admitted server and issues what its agent needs.
func (c clusterService) register(ctx context.Context, req *api.EnrollRequest, keys *enrollKeys, adm *admission, now time.Time) (*api.EnrollResponse, error) {
	n := c.n
	cmd, err := serverUpsertFor(req, keys, adm, now)
	if err != nil {
		return nil, err
	}
	srvRes, err := n.store.Apply(ctx, cmd)
	if err != nil {
		if errors.Is(err, raftstore.ErrNotFound) {
			n.logger.Warn("refused enrollment: no such project", "method", req.Method, "server_name", req.Name, "project", adm.project, "err", err)
			return nil, httpapi.Errorf(http.StatusForbidden, "project %s does not exist: create it before servers enroll into it", adm.project)
		}
		if errors.Is(err, raftstore.ErrConflict) && adm.method == raftstore.EnrollToken {
			// Another enrollment took the name since admitToken looked.
			return nil, c.refuseTaken(req, adm.project, strings.ToLower(req.Name))
		}
		return nil, err
	}
	var srv raftstore.Server
	if err := srvRes.Decode(&srv); err != nil {
		return nil, err
	}
	_, meta, err := n.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	tca, err := ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, n.kek, n.now)
	if err != nil {
		return nil, err
	}
	certPEM, err := tca.Issue(ca.RoleAgent, srv.ID, keys.agent, nil, nil, c.agentCertTTL())
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	hostCerts, _, err := c.hostCertsFor(&srv, keys.hostKeys)
	if err != nil {
		return nil, err
	}
	if err := n.keys.EnsureUserCA(ctx, srv.Project); err != nil {
		return nil, err
	}
	_, cas, err := n.store.State().CAsFor(nil, raftstore.CAUser, srv.Project)
	if err != nil {
		return nil, err
	}
	resp := &api.EnrollResponse{ServerID: srv.ID, Project: srv.Project, CertPEM: string(certPEM), CAPEM: meta.TLSCACert,
		CertExpires: now.Add(c.agentCertTTL()), HostCerts: hostCerts, UserCAKeys: []string{}}
	for _, r := range cas {
		if r.State != raftstore.CARetired {
			resp.UserCAKeys = append(resp.UserCAKeys, r.PublicKey)
		}
	}
	details := map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "method": req.Method}
	if adm.instanceID != "" {
		details["instance_id"] = adm.instanceID
	}
	n.audit.Record("server.enrolled", "agent", details)
	n.logger.Info("enrolled server", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "method", req.Method, "instance_id", adm.instanceID)
	return resp, nil
}

func newServerID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "srv-" + hex.EncodeToString(b)
}

// admitAWS verifies the request's AWS instance identity document, and that
// the request's addr is the instance's private IP it names.
func (c clusterService) admitAWS(req *api.EnrollRequest) (*admission, error) {
	n, cfg := c.n, c.n.cfg.Agents.AWS
	if cfg.CertsFile == "" {
		return nil, httpapi.Errorf(http.StatusForbidden, "this cluster does not accept AWS auto-enrollment (node %s has no agents.aws configuration): enroll with a token", n.id)
	}
	if err := checkCloudSSHPort(req); err != nil {
		return nil, c.refuseClaim(req, err)
	}
	// Parsed again only when the file changes, so that an operator adding a
	// region's certificate needs no restart.
	certs, err := n.cloud.awsCertificates(cfg.CertsFile)
	if err != nil {
		return nil, fmt.Errorf("agents.aws.certs_file %s: %w", cfg.CertsFile, err)
	}
	v := &cloudid.AWSVerifier{Certificates: certs, Accounts: cfg.Accounts, MaxAge: cfg.MaxAge, Now: n.now}
	id, err := v.Verify(cloudid.AWSEvidence{Document: []byte(req.AWSDocument), Signature: req.AWSSignature, PKCS7: req.AWSPKCS7})
	if err != nil {
		return nil, c.refuseCloud(req, err)
	}
	n.logger.Info("verified AWS instance identity", "server_name", req.Name, "account", id.AccountID, "instance_id", id.InstanceID,
		"region", id.Region, "pending_time", id.PendingTime, "private_ip", id.PrivateIP, "project", id.Project)
	if err := checkAWSAddr(req, id); err != nil {
		return nil, c.refuseClaim(req, err)
	}
	return c.admitInstance(req, raftstore.EnrollAWS, id.Project, id.InstanceID, cfg.AllowReenroll, "agents.aws.allow_reenroll")
}

// admitGCP verifies the request's GCP instance identity token. The token
// names no IP address: the request's addr is taken as it is (docs/agent.md,
// "Threat model").
func (c clusterService) admitGCP(ctx context.Context, req *api.EnrollRequest) (*admission, error) {
	n, cfg := c.n, c.n.cfg.Agents.GCP
	if cfg.Audience == "" {
		return nil, httpapi.Errorf(http.StatusForbidden, "this cluster does not accept GCP auto-enrollment (node %s has no agents.gcp configuration): enroll with a token", n.id)
	}
	if err := checkCloudSSHPort(req); err != nil {
		return nil, c.refuseClaim(req, err)
	}
	// One verifier per node: it discovers the issuer once and bounds how
	// often it fetches the issuer's keys, whatever tokens are POSTed.
	id, err := n.cloud.gcpVerifier(cfg, n.now).Verify(ctx, req.GCPToken)
	if err != nil {
		return nil, c.refuseCloud(req, err)
	}
	n.logger.Info("verified GCP instance identity", "server_name", req.Name, "gcp_project", id.ProjectID, "instance_id", id.InstanceID,
		"instance_name", id.InstanceName, "zone", id.Zone, "created", id.CreatedAt, "project", id.Project)
	return c.admitInstance(req, raftstore.EnrollGCP, id.Project, id.InstanceID, cfg.AllowReenroll, "agents.gcp.allow_reenroll")
}

// refuseCloud logs a refused cloud identity in full and answers with its
// reason only.
func (c clusterService) refuseCloud(req *api.EnrollRequest, err error) error {
	var ce *cloudid.Error
	if !errors.As(err, &ce) {
		return err
	}
	c.n.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "addr", req.Addr, "err", err)
	status := http.StatusForbidden
	switch {
	case errors.Is(err, cloudid.ErrMalformed):
		status = http.StatusBadRequest
	case errors.Is(err, cloudid.ErrUnavailable):
		status = http.StatusServiceUnavailable
	}
	return httpapi.Errorf(status, "%s", ce.Reason)
}

// refuseClaim logs a cloud enrollment refused for what it claims beyond
// its identity (its port, address or names), and returns err.
func (c clusterService) refuseClaim(req *api.EnrollRequest, err error) error {
	c.n.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "addr", req.Addr, "ssh_port", req.SSHPort, "err", err)
	return err
}

// admitInstance gives a verified cloud instance its server id: a new one,
// or (when re-enrollment is allowed) the one it enrolled as before, provided
// the request keeps that server's names and address. An instance enrolled
// already is refused otherwise. The store's unique instance index settles a
// race between two enrollments of one instance.
func (c clusterService) admitInstance(req *api.EnrollRequest, method, project, instanceID string, allowReenroll bool, key string) (*admission, error) {
	adm := &admission{project: project, method: method, instanceID: instanceID}
	_, srv, err := c.n.store.State().ServerByInstance(nil, instanceID)
	if err != nil {
		return nil, err
	}
	switch {
	case srv == nil:
		adm.serverID = newServerID()
	case allowReenroll:
		if err := checkReenroll(req, srv, instanceID); err != nil {
			return nil, c.refuseClaim(req, err)
		}
		adm.serverID = srv.ID
		c.n.logger.Info("instance enrolls again", "method", method, "instance_id", instanceID, "server", srv.Name, "server_id", srv.ID)
	default:
		c.n.logger.Warn("refused enrollment: instance already enrolled", "method", method, "server_name", req.Name,
			"instance_id", instanceID, "server", srv.Name, "server_id", srv.ID)
		return nil, httpapi.Errorf(http.StatusForbidden, "instance %s is already enrolled as server %s (%s): an instance enrolls once; "+
			"delete that server (servers delete %s) to enroll it again, or set %s", instanceID, srv.Name, srv.ID, srv.Name, key)
	}
	return adm, nil
}

// hostCertsFor certifies each host key for the server's names and address
// with the active host CA, and returns that CA's key.
func (c clusterService) hostCertsFor(srv *raftstore.Server, keys []gossh.PublicKey) ([]string, string, error) {
	return c.n.keys.TargetHostCerts(srv, keys, c.hostCertTTL())
}

// RenewHostCerts certifies the host keys pinned for an enrolled server again
// (the caller has verified its agent's certificate). The keys are the ones
// recorded at enrollment, whatever the agent might claim now.
func (c clusterService) RenewHostCerts(ctx context.Context, srv *raftstore.Server) (*api.AgentHostCertsResponse, error) {
	var keys []gossh.PublicKey
	for _, line := range srv.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("server %s: pinned host key: %w", srv.ID, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, httpapi.Errorf(http.StatusConflict, "server %s has no pinned host keys to certify", srv.Name)
	}
	certs, caKey, err := c.hostCertsFor(srv, keys)
	if err != nil {
		return nil, err
	}
	n := c.n
	fields := map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "validity": c.hostCertTTL().String()}
	if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(caKey)); err == nil {
		fields["host_ca"] = gossh.FingerprintSHA256(k)
	}
	n.audit.Record("agent.host_certs_renewed", "agent", fields)
	n.logger.Info("renewed host certificates", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "certificates", len(certs))
	return &api.AgentHostCertsResponse{HostCerts: certs, HostCAKey: caKey}, nil
}

// hostCertTTL is how long target host certificates are valid
// (agents.host_cert_validity).
func (c clusterService) hostCertTTL() time.Duration {
	if v := c.n.cfg.Agents.HostCertValidity; v > 0 {
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
func (c clusterService) RenewAgent(ctx context.Context, srv *raftstore.Server, req *api.AgentRenewRequest) (*api.AgentRenewResponse, error) {
	n := c.n
	block, _ := pem.Decode([]byte(req.PublicKey))
	if block == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not a PKIX public key")
	}
	_, meta, err := n.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	tca, err := ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, n.kek, n.now)
	if err != nil {
		return nil, err
	}
	certPEM, err := tca.Issue(ca.RoleAgent, srv.ID, pub, nil, nil, c.agentCertTTL())
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	cert, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	n.audit.Record("agent.cert_renewed", "agent", map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project})
	n.logger.Info("renewed agent certificate", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "not_after", cert.NotAfter)
	return &api.AgentRenewResponse{CertPEM: string(certPEM), CertExpires: cert.NotAfter.UTC()}, nil
}

// agentCertTTL is how long agent certificates are valid (agents.cert_validity).
func (c clusterService) agentCertTTL() time.Duration {
	if v := c.n.cfg.Agents.CertValidity; v > 0 {
		return v
	}
	return agentCertValidity
}
