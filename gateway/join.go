package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
)

// joinState is what a joining node remembers between getting its certificate
// and being added as a voter, so a restart in between finishes the join.
type joinState struct {
	Addrs []string `json:"addrs"`
}

// join obtains this node's certificate from an existing cluster with a join
// token. The server is trusted only if its CA matches the token's pin.
func (n *Node) join(ctx context.Context) (caPEM, certPEM, keyPEM []byte, err error) {
	text := n.cfg.Cluster.Join
	if n.cfg.Cluster.JoinFile != "" {
		b, err := os.ReadFile(n.cfg.Cluster.JoinFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("join token file: %w", err)
		}
		text = string(b)
	}
	tok, err := api.ParseToken(text)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join token: %w", err)
	}
	if tok.Kind != api.TokenJoin {
		return nil, nil, nil, fmt.Errorf("join token: this is an %s token, not a join token", tok.Kind)
	}
	key, err := ca.NewNodeKey()
	if err != nil {
		return nil, nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, nil, err
	}
	a := n.advertise()
	req := &api.JoinRequest{
		Secret: tok.Secret, NodeID: n.id, PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		RaftAddr: a.Raft, APIAddr: a.API, SSHAddr: a.SSH,
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.PinnedTLS(tok.CAPin)}}
	var resp api.JoinResponse
	var errs []error
	for _, addr := range tok.Addrs {
		err := postJSON(ctx, client, "https://"+addr+"/v1/cluster/join", req, &resp)
		if err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if resp.CertPEM == "" {
		return nil, nil, nil, fmt.Errorf("join the cluster: %w", errors.Join(errs...))
	}
	if keyPEM, err = ca.EncodeKeyPEM(key); err != nil {
		return nil, nil, nil, err
	}
	caPEM, certPEM = []byte(resp.CAPEM), []byte(resp.CertPEM)
	if caCert, err := ca.ParseCertPEM(caPEM); err != nil || ca.Pin(caCert) != tok.CAPin {
		return nil, nil, nil, fmt.Errorf("join: %w", ca.ErrPinMismatch)
	}
	st, _ := json.Marshal(joinState{Addrs: tok.Addrs})
	if err := errors.Join(n.saveTLS(caPEM, certPEM, keyPEM), n.dir.writeFile(st, "join.json")); err != nil {
		return nil, nil, nil, err
	}
	n.logger.Info("obtained node certificate", "cluster", resp.ClusterID)
	return caPEM, certPEM, keyPEM, nil
}

// becomeVoter asks the cluster, over mutual TLS with the new certificate, to
// add this node (whose raft is now listening) as a voter.
func (n *Node) becomeVoter(ctx context.Context) error {
	b, err := n.dir.readFile("join.json")
	if err != nil {
		return err
	}
	var st joinState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", n.dir.path("join.json"), err)
	}
	cfg := n.tls.RaftClient.Clone()
	cfg.VerifyConnection = nil
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	a := n.advertise()
	req := &api.VoterRequest{RaftAddr: a.Raft, APIAddr: a.API, SSHAddr: a.SSH}
	var resp api.VoterResponse
	if err := postRetry(ctx, client, st.Addrs, "/v1/cluster/join/voter", req, &resp); err != nil {
		return fmt.Errorf("join as a non-voter: %w", err)
	}
	// Wait until the log reaches this node: that proves the leader can reach
	// it. Only then does it become a voter the quorum counts on.
	deadline := time.Now().Add(2 * time.Minute)
	for n.store.RaftAppliedIndex() < resp.Index {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("join: the leader has not reached this node at %s within 2 minutes; check advertise.raft and firewalls", a.Raft)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := postRetry(ctx, client, st.Addrs, "/v1/cluster/join/promote", struct{}{}, nil); err != nil {
		return fmt.Errorf("become a voter: %w", err)
	}
	n.logger.Info("joined the cluster as a voter")
	return os.Remove(n.dir.path("join.json"))
}

// postRetry posts to the first of addrs that answers, retrying for a while
// (a leader election may be under way).
func postRetry(ctx context.Context, client *http.Client, addrs []string, path string, body, out any) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var errs []error
		for _, addr := range addrs {
			err := postJSON(ctx, client, "https://"+addr+path, body, out)
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(errs...)
		}
		time.Sleep(time.Second)
	}
}

func postJSON(ctx context.Context, client *http.Client, url string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// clusterService implements httpapi.Cluster for this node.
type clusterService struct{ n *Node }

var _ httpapi.Cluster = clusterService{}

// Join admits a node that presents a valid join token: it spends one use of
// the token, and signs the node's public key with the cluster CA.
func (c clusterService) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	n := c.n
	if !nodeIDPattern.MatchString(req.NodeID) {
		return nil, httpapi.Errorf(http.StatusBadRequest, "node id %q: use lowercase letters, digits and dashes", req.NodeID)
	}
	var ips []net.IP
	for _, addr := range []string{req.RaftAddr, req.APIAddr} {
		if err := checkHostPort(addr, false); err != nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, "address: %v", err)
		}
		host, _, _ := net.SplitHostPort(addr)
		ips = append(ips, net.ParseIP(host))
	}
	block, _ := pem.Decode([]byte(req.PublicKey))
	if block == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key is not a PKIX public key")
	}
	keyHash, err := raftstore.HashNodeKey(pub)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "public_key: %v", err)
	}
	if err := n.store.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	if _, existing, _ := n.store.State().NodeByID(nil, req.NodeID); existing != nil {
		return nil, httpapi.Errorf(http.StatusConflict, "node id %q is already a member of this cluster; remove it first or pick another id", req.NodeID)
	}
	if _, err := n.store.Apply(ctx, &raftstore.TokenUse{Hash: api.HashSecret(req.Secret), Kind: raftstore.TokenKind(api.TokenJoin), Now: n.now().UTC()}); err != nil {
		n.logger.Warn("refused join", "joining_node", req.NodeID, "err", err)
		switch {
		case errors.Is(err, raftstore.ErrExpired):
			return nil, httpapi.Errorf(http.StatusForbidden, "join token has expired")
		case errors.Is(err, raftstore.ErrNotFound), errors.Is(err, raftstore.ErrExhausted):
			return nil, httpapi.Errorf(http.StatusForbidden, "join token is not valid for this cluster (unknown, revoked or used up)")
		}
		return nil, err
	}
	_, meta, err := n.store.State().Meta(nil)
	if err != nil {
		return nil, err
	}
	// The node is a member (of the nodes table) from here on: a certificate
	// for its key opens the node-only endpoints and forwarding until it is
	// removed.
	if _, err := n.store.Apply(ctx, &raftstore.NodeUpsert{Node: raftstore.Node{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, SSHAddr: req.SSHAddr,
		KeyHash: keyHash}, Now: n.now().UTC()}); err != nil {
		return nil, err
	}
	tca, err := ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, n.kek, n.now)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	certPEM, err := tca.Issue(ca.RoleNode, req.NodeID, pub, dedupIPs(ips), nil, n.nodeCertTTL())
	if err != nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "%v", err)
	}
	n.logger.Info("issued node certificate", "joining_node", req.NodeID, "raft", req.RaftAddr)
	return &api.JoinResponse{ClusterID: meta.ClusterID, CertPEM: string(certPEM), CAPEM: meta.TLSCACert}, nil
}

// AddNonvoter records the node's addresses and adds it to raft as a
// non-voter; it returns the index the node must apply before it asks to be
// promoted. nodeID comes from the caller's verified certificate, never from
// the body, and must be a member of the nodes table (checked by the API).
func (c clusterService) AddNonvoter(ctx context.Context, nodeID string, req *api.VoterRequest) (uint64, error) {
	for _, addr := range []string{req.RaftAddr, req.APIAddr} {
		if err := checkHostPort(addr, false); err != nil {
			return 0, httpapi.Errorf(http.StatusBadRequest, "address: %v", err)
		}
	}
	if _, err := c.n.store.Apply(ctx, &raftstore.NodeUpsert{Node: raftstore.Node{ID: nodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, SSHAddr: req.SSHAddr}, Now: c.n.now().UTC()}); err != nil {
		return 0, err
	}
	return c.n.store.AddNonvoter(ctx, nodeID, req.RaftAddr)
}

// Promote makes a caught-up non-voter a voter.
func (c clusterService) Promote(ctx context.Context, nodeID string) error {
	_, node, err := c.n.store.State().NodeByID(nil, nodeID)
	if err != nil {
		return err
	}
	if node == nil {
		return httpapi.Errorf(http.StatusForbidden, "node %q is not a member of this cluster", nodeID)
	}
	return c.n.store.AddVoter(ctx, nodeID, node.RaftAddr)
}

// RemoveNode takes a node out of raft and forgets it, key included. The
// API's node-only endpoints and the raft port check the nodes table, so its
// certificate no longer opens them, not even after a node of the same id
// joins again (with a key of its own).
func (c clusterService) RemoveNode(ctx context.Context, nodeID string) error {
	if err := c.n.store.RemoveServer(ctx, nodeID); err != nil {
		return err
	}
	_, err := c.n.store.Apply(ctx, &raftstore.NodeDelete{ID: nodeID})
	return err
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

// EnsureUserCA creates the project's user CA unless it has one.
func (c clusterService) EnsureUserCA(ctx context.Context, project string) error {
	return c.n.keys.EnsureUserCA(ctx, project)
}
