package enroll

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Enroll admits a server whose agent proves where it belongs: with an
// enrollment token (one use spent; the token names the project), or with
// its cloud's signed instance identity (AWS, GCP; the account or project
// mapping names the project, and an instance enrolls once). It registers
// the server and returns the agent's TLS certificate, host certificates for
// the server's host keys, and the project's user CA keys.
func (s *Service) Enroll(ctx context.Context, req *api.EnrollRequest) (*api.EnrollResponse, error) {
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
	rule := s.cfg.Targets
	if err := rule.CheckHost(req.Addr, port); err != nil {
		return nil, s.refuseName(req, "", req.Addr, "address not allowed",
			fault.Errorf(http.StatusBadRequest, "cannot enroll a server at %s port %d: %v", req.Addr, port, err))
	}
	now := s.now().UTC()
	var adm *admission
	switch req.Method {
	case api.EnrollToken:
		adm, err = s.admitToken(ctx, req, keys, now)
	case api.EnrollAWS:
		adm, err = s.admitAWS(req)
	case api.EnrollGCP:
		adm, err = s.admitGCP(ctx, req)
	default:
		return nil, fault.Errorf(http.StatusBadRequest, "enrollment method %q is not token, aws or gcp", req.Method)
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkTargetNames(req, adm.project); err != nil {
		return nil, err
	}
	return s.register(ctx, req, keys, adm, now)
}

// enrollKeys are the keys of an enrollment request, parsed.
type enrollKeys struct {
	hostKeys []gossh.PublicKey
	agent    crypto.PublicKey
}

// parseEnrollKeys checks what every enrollment carries, whatever its method.
func parseEnrollKeys(req *api.EnrollRequest) (*enrollKeys, error) {
	if req.MachineID == "" || len(req.MachineID) > 128 || strings.ContainsAny(req.MachineID, " \t\r\n/") {
		return nil, fault.Errorf(http.StatusBadRequest, "machine_id is missing or malformed")
	}
	if ip := net.ParseIP(req.Addr); ip == nil || ip.IsUnspecified() {
		return nil, fault.Errorf(http.StatusBadRequest, "addr %q must be the IP address the bastion dials", req.Addr)
	}
	var keys enrollKeys
	for _, line := range req.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fault.Errorf(http.StatusBadRequest, "host key %q is not in authorized_keys format", line)
		}
		if _, isCert := k.(*gossh.Certificate); isCert {
			return nil, fault.Errorf(http.StatusBadRequest, "host keys must be plain keys, not certificates")
		}
		keys.hostKeys = append(keys.hostKeys, k)
	}
	if len(keys.hostKeys) == 0 {
		return nil, fault.Errorf(http.StatusBadRequest, "at least one host key is required")
	}
	pub, err := ca.ParsePublicKeyPEM(req.PublicKey)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
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
func (s *Service) admitToken(ctx context.Context, req *api.EnrollRequest, keys *enrollKeys, now time.Time) (*admission, error) {
	hash := api.HashSecret(req.Secret)
	refused := func(err error) error {
		s.logger.Warn("refused enrollment", "method", req.Method, "server_name", req.Name, "err", err)
		switch {
		case errors.Is(err, raftstore.ErrExpired):
			return fault.Errorf(http.StatusForbidden, "enrollment token has expired")
		case errors.Is(err, raftstore.ErrNotFound), errors.Is(err, raftstore.ErrExhausted), errors.Is(err, raftstore.ErrInvalid):
			return fault.Errorf(http.StatusForbidden, "enrollment token is not valid for this cluster (unknown, revoked or used up)")
		}
		return err
	}
	// The local replica names the token's project, so that the request is
	// checked before a use is spent; the use below checks the token again on
	// the leader. A token this replica does not know (yet) or holds as
	// unusable goes straight to the leader, which decides; a caller without
	// a usable token learns nothing about the project's servers.
	_, peek, err := s.store.State().TokenByHash(nil, hash)
	if err != nil {
		return nil, err
	}
	var adm *admission
	if peek != nil && peek.Kind == raftstore.TokenEnroll && peek.UsesLeft != 0 && (peek.ExpiresAt.IsZero() || now.Before(peek.ExpiresAt)) {
		adm = &admission{project: peek.Project, serverID: newServerID(), method: raftstore.EnrollToken}
		if taken := s.enrolledAs(req); taken != nil {
			return nil, s.refuseTaken(req, peek.Project, taken.Name)
		}
		if err := s.precheck(req, keys, adm, now); err != nil {
			s.logger.Warn("refused enrollment before spending its token", "method", req.Method, "server_name", req.Name, "project", adm.project, "err", err)
			return nil, err
		}
		if err := s.checkTargetNames(req, peek.Project); err != nil {
			return nil, err
		}
	}
	res, err := s.store.Apply(ctx, &raftstore.TokenUse{Hash: hash, Kind: raftstore.TokenEnroll, Now: now})
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
	if taken := s.enrolledAs(req); taken != nil {
		return nil, s.refuseTaken(req, tok.Project, taken.Name)
	}
	if adm == nil || adm.project != tok.Project {
		adm = &admission{project: tok.Project, serverID: newServerID(), method: raftstore.EnrollToken}
	}
	return adm, nil
}

// enrolledAs returns the enrolled server that already answers to the name
// or one of the alt names req asks for, or nil.
func (s *Service) enrolledAs(req *api.EnrollRequest) *raftstore.Server {
	st := s.store.State()
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
func (s *Service) refuseTaken(req *api.EnrollRequest, project, server string) error {
	return s.refuseName(req, project, server, "name already enrolled", fault.Errorf(http.StatusConflict,
		"server %s is already enrolled: a server enrolls once. To enroll it again (reinstalled, new host keys or address), "+
			"an administrator deletes it first (servers delete %s)", server, server))
}

// precheck refuses, without writing anything, a registration that register
// would refuse: the record's form, a project that is gone, and a name
// another server holds.
func (s *Service) precheck(req *api.EnrollRequest, keys *enrollKeys, adm *admission, now time.Time) error {
	cmd, err := serverUpsertFor(req, keys, adm, now)
	if err != nil {
		return err
	}
	if err := cmd.Validate(); err != nil {
		return fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	st := s.store.State()
	if _, p, err := st.ProjectByName(nil, adm.project); err != nil {
		return err
	} else if p == nil {
		return fault.Errorf(http.StatusForbidden, "project %s does not exist: create it before servers enroll into it", adm.project)
	}
	if err := st.CheckServerNames(cmd.Server); err != nil {
		s.logger.Warn("enrollment asks for a name or address another server holds", "server_name", raftstore.ClientText(req.Name), "project", adm.project, "err", err)
		// Audited like a name already enrolled, and as terse: the answer
		// must not name another project's server.
		return s.refuseName(req, adm.project, req.Name, "name or address taken", fault.Errorf(http.StatusConflict,
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
		return nil, fault.Errorf(http.StatusBadRequest, "public_key: %v", err)
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
func (s *Service) register(ctx context.Context, req *api.EnrollRequest, keys *enrollKeys, adm *admission, now time.Time) (*api.EnrollResponse, error) {
	cmd, err := serverUpsertFor(req, keys, adm, now)
	if err != nil {
		return nil, err
	}
	srvRes, err := s.store.Apply(ctx, cmd)
	if err != nil {
		if errors.Is(err, raftstore.ErrNotFound) {
			s.logger.Warn("refused enrollment: no such project", "method", req.Method, "server_name", req.Name, "project", adm.project, "err", err)
			return nil, fault.Errorf(http.StatusForbidden, "project %s does not exist: create it before servers enroll into it", adm.project)
		}
		if errors.Is(err, raftstore.ErrConflict) && adm.method == raftstore.EnrollToken {
			// Another enrollment took the name since admitToken looked.
			return nil, s.refuseTaken(req, adm.project, strings.ToLower(req.Name))
		}
		return nil, err
	}
	var srv raftstore.Server
	if err := srvRes.Decode(&srv); err != nil {
		return nil, err
	}
	_, meta, err := s.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	certPEM, err := s.issueTLS(api.RoleAgent, srv.ID, keys.agent, nil, nil, s.agentCertTTL())
	if err != nil {
		return nil, err
	}
	hostCerts, _, err := s.certs.TargetHostCerts(&srv, keys.hostKeys, s.hostCertTTL())
	if err != nil {
		return nil, err
	}
	if err := s.certs.EnsureUserCA(ctx, srv.Project); err != nil {
		return nil, err
	}
	_, cas, err := s.store.State().CAsFor(nil, raftstore.CAUser, srv.Project)
	if err != nil {
		return nil, err
	}
	resp := &api.EnrollResponse{ServerID: srv.ID, Project: srv.Project, CertPEM: string(certPEM), CAPEM: meta.TLSCACert,
		CertExpires: now.Add(s.agentCertTTL()), HostCerts: hostCerts, UserCAKeys: []string{}}
	for _, r := range cas {
		if r.State != raftstore.CARetired {
			resp.UserCAKeys = append(resp.UserCAKeys, r.PublicKey)
		}
	}
	details := map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "method": req.Method}
	if adm.instanceID != "" {
		details["instance_id"] = adm.instanceID
	}
	s.audit.Record(EventServerEnroll, "agent", details)
	s.logger.Info("enrolled server", "server", srv.Name, "server_id", srv.ID, "project", srv.Project, "method", req.Method, "instance_id", adm.instanceID)
	return resp, nil
}

func newServerID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "srv-" + hex.EncodeToString(b)
}
