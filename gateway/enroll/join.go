package enroll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// nodeIDPattern is the form of a node id.
var nodeIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidNodeID reports whether id has the form of a node id: lowercase
// letters, digits and dashes, starting with a letter or digit, at most 63
// characters. A node's configuration and a joining node are held to it.
func ValidNodeID(id string) bool { return nodeIDPattern.MatchString(id) }

// CheckHostPort checks that addr is an IP address and port, as a node's
// addresses are written (a wildcard address only where allowWildcard:
// what others dial cannot be one).
func CheckHostPort(addr string, allowWildcard bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("%q: host must be an IP address", addr)
	}
	if !allowWildcard && ip.IsUnspecified() {
		return fmt.Errorf("%q: a wildcard cannot be dialled", addr)
	}
	return nil
}

// Join admits a node that presents a valid join token: it spends one use of
// the token, and signs the node's public key with the cluster CA.
func (s *Service) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	if !ValidNodeID(req.NodeID) {
		return nil, fault.Errorf(http.StatusBadRequest, "node id %q: use lowercase letters, digits and dashes", req.NodeID)
	}
	var ips []net.IP
	for _, addr := range []string{req.RaftAddr, req.APIAddr} {
		if err := CheckHostPort(addr, false); err != nil {
			return nil, fault.Errorf(http.StatusBadRequest, "address: %v", err)
		}
		host, _, _ := net.SplitHostPort(addr)
		ips = append(ips, net.ParseIP(host))
	}
	pub, err := ca.ParsePublicKeyPEM(req.PublicKey)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	keyHash, err := raftstore.HashNodeKey(pub)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "public_key: %v", err)
	}
	if err := s.store.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	if _, existing, _ := s.store.State().NodeByID(nil, req.NodeID); existing != nil {
		return nil, fault.Errorf(http.StatusConflict, "node id %q is already a member of this cluster; remove it first or pick another id", req.NodeID)
	}
	if _, err := s.store.Apply(ctx, &raftstore.TokenUse{Hash: api.HashSecret(req.Secret), Kind: raftstore.TokenKind(api.TokenJoin), Now: s.now().UTC()}); err != nil {
		s.logger.Warn("refused join", "joining_node", req.NodeID, "err", err)
		switch {
		case errors.Is(err, raftstore.ErrExpired):
			return nil, fault.Errorf(http.StatusForbidden, "join token has expired")
		case errors.Is(err, raftstore.ErrNotFound), errors.Is(err, raftstore.ErrExhausted):
			return nil, fault.Errorf(http.StatusForbidden, "join token is not valid for this cluster (unknown, revoked or used up)")
		}
		return nil, err
	}
	_, meta, err := s.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	// The node is a member (of the nodes table) from here on: a certificate
	// for its key opens the node-only endpoints and forwarding until it is
	// removed.
	if _, err := s.store.Apply(ctx, &raftstore.NodeUpsert{Node: raftstore.Node{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, SSHAddr: req.SSHAddr,
		KeyHash: keyHash}, Now: s.now().UTC()}); err != nil {
		return nil, err
	}
	certPEM, err := s.issueTLS(api.RoleNode, req.NodeID, pub, dedupIPs(ips), nil, s.cfg.NodeCertValidity)
	if err != nil {
		return nil, err
	}
	s.logger.Info("issued node certificate", "joining_node", req.NodeID, "raft", req.RaftAddr)
	return &api.JoinResponse{ClusterID: meta.ClusterID, CertPEM: string(certPEM), CAPEM: meta.TLSCACert}, nil
}

// AddNonvoter records the node's addresses and adds it to raft as a
// non-voter; it returns the index the node must apply before it asks to be
// promoted. nodeID comes from the caller's verified certificate, never from
// the body, and must be a member of the nodes table (checked by the API).
func (s *Service) AddNonvoter(ctx context.Context, nodeID string, req *api.VoterRequest) (uint64, error) {
	for _, addr := range []string{req.RaftAddr, req.APIAddr} {
		if err := CheckHostPort(addr, false); err != nil {
			return 0, fault.Errorf(http.StatusBadRequest, "address: %v", err)
		}
	}
	if _, err := s.store.Apply(ctx, &raftstore.NodeUpsert{Node: raftstore.Node{ID: nodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, SSHAddr: req.SSHAddr}, Existing: true, Now: s.now().UTC()}); err != nil {
		return 0, err
	}
	return s.store.AddNonvoter(ctx, nodeID, req.RaftAddr)
}

// Promote makes a caught-up non-voter a voter.
func (s *Service) Promote(ctx context.Context, nodeID string) error {
	_, node, err := s.store.State().NodeByID(nil, nodeID)
	if err != nil {
		return err
	}
	if node == nil {
		return fault.Errorf(http.StatusForbidden, "node %q is not a member of this cluster", nodeID)
	}
	return s.store.AddVoter(ctx, nodeID, node.RaftAddr)
}

func dedupIPs(ips []net.IP) []net.IP {
	var out []net.IP
	seen := map[string]bool{}
	for _, ip := range ips {
		if !seen[ip.String()] {
			seen[ip.String()] = true
			out = append(out, ip)
		}
	}
	return out
}
