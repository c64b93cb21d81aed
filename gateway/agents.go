package gateway

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
)

const (
	// agentCertValidity: agents renew their certificate well before this.
	agentCertValidity = 30 * 24 * time.Hour
	// targetHostCertValidity: agents fetch fresh host certificates long
	// before this runs out.
	targetHostCertValidity = 90 * 24 * time.Hour
)

// Enroll admits a server whose agent presents a valid enrollment token: it
// spends one use of the token, registers (or re-registers, from the same
// machine) the server in the token's project, and returns the agent's TLS
// certificate, host certificates for the server's host keys, and the
// project's user CA keys.
func (c clusterService) Enroll(ctx context.Context, req *api.EnrollRequest) (*api.EnrollResponse, error) {
	n := c.n
	if req.Method != api.EnrollToken {
		return nil, httpapi.Errorf(http.StatusBadRequest, "enrollment method %q is not supported by this node (token only)", req.Method)
	}
	if req.MachineID == "" || len(req.MachineID) > 128 || strings.ContainsAny(req.MachineID, " \t\r\n/") {
		return nil, httpapi.Errorf(http.StatusBadRequest, "machine_id is missing or malformed")
	}
	if ip := net.ParseIP(req.Addr); ip == nil || ip.IsUnspecified() {
		return nil, httpapi.Errorf(http.StatusBadRequest, "addr %q must be the IP address the bastion dials", req.Addr)
	}
	var hostKeys []gossh.PublicKey
	for _, line := range req.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "host key %q is not in authorized_keys format", line)
		}
		if _, isCert := k.(*gossh.Certificate); isCert {
			return nil, httpapi.Errorf(http.StatusBadRequest, "host keys must be plain keys, not certificates")
		}
		hostKeys = append(hostKeys, k)
	}
	if len(hostKeys) == 0 {
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
	now := n.now().UTC()
	res, err := n.store.Apply(ctx, &raftstore.TokenUse{Hash: api.HashSecret(req.Secret), Kind: raftstore.TokenEnroll, Now: now})
	if err != nil {
		n.logger.Warn("refused enrollment", "server_name", req.Name, "err", err)
		switch {
		case errors.Is(err, raftstore.ErrExpired):
			return nil, httpapi.Errorf(http.StatusForbidden, "enrollment token has expired")
		case errors.Is(err, raftstore.ErrNotFound), errors.Is(err, raftstore.ErrExhausted), errors.Is(err, raftstore.ErrInvalid):
			return nil, httpapi.Errorf(http.StatusForbidden, "enrollment token is not valid for this cluster (unknown, revoked or used up)")
		}
		return nil, err
	}
	var tok raftstore.Token
	if err := res.Decode(&tok); err != nil {
		return nil, err
	}
	id := c.serverIDFor(tok.Project, req)
	var keys []string
	for _, k := range hostKeys {
		keys = append(keys, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))))
	}
	port := req.SSHPort
	if port == 0 {
		port = raftstore.DefaultSSHPort
	}
	srvRes, err := n.store.Apply(ctx, &raftstore.ServerUpsert{Server: raftstore.Server{
		ID: id, Project: tok.Project, Name: req.Name, AltNames: req.AltNames, Addr: req.Addr, SSHPort: port,
		HostKeys: keys, Labels: req.Labels, EnrollMethod: raftstore.EnrollToken, MachineID: req.MachineID,
	}, Now: now})
	if err != nil {
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
	certPEM, err := tca.Issue(ca.RoleAgent, srv.ID, pub, nil, nil, agentCertValidity)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	hostCerts, err := c.hostCertsFor(&srv, hostKeys)
	if err != nil {
		return nil, err
	}
	if _, err := n.keys.userCA(ctx, srv.Project); err != nil {
		return nil, err
	}
	_, cas, err := n.store.State().CAsFor(nil, raftstore.CAUser, srv.Project)
	if err != nil {
		return nil, err
	}
	resp := &api.EnrollResponse{ServerID: srv.ID, Project: srv.Project, CertPEM: string(certPEM), CAPEM: meta.TLSCACert,
		CertExpires: now.Add(agentCertValidity), HostCerts: hostCerts, UserCAKeys: []string{}}
	for _, r := range cas {
		if r.State != raftstore.CARetired {
			resp.UserCAKeys = append(resp.UserCAKeys, r.PublicKey)
		}
	}
	n.audit.Record("server.enrolled", "agent", map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project, "method": req.Method})
	n.logger.Info("enrolled server", "server", srv.Name, "server_id", srv.ID, "project", srv.Project)
	return resp, nil
}

// serverIDFor keeps a server's id when the same machine enrolls again under
// the same name; anything else gets a new id.
func (c clusterService) serverIDFor(project string, req *api.EnrollRequest) string {
	_, servers, err := c.n.store.State().ServersByProject(nil, project)
	if err == nil {
		for _, s := range servers {
			if s.Name == strings.ToLower(req.Name) && s.MachineID == req.MachineID {
				return s.ID
			}
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "srv-" + hex.EncodeToString(b)
}

// hostCertsFor certifies each host key for the server's names and address.
func (c clusterService) hostCertsFor(srv *raftstore.Server, keys []gossh.PublicKey) ([]string, error) {
	_, rec, err := c.n.store.State().ActiveCA(nil, raftstore.CAHost, "")
	if err != nil || rec == nil {
		return nil, errors.New("no active host CA")
	}
	hca, err := c.n.keys.open(rec)
	if err != nil {
		return nil, err
	}
	names := append(append([]string{srv.Name}, srv.AltNames...), srv.Addr)
	var out []string
	for _, k := range keys {
		cert, err := hca.SignHostForNames(k, "rampart host "+srv.Name, names, targetHostCertValidity, c.n.now())
		if err != nil {
			return nil, err
		}
		out = append(out, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert))))
	}
	return out, nil
}
