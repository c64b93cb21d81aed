package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/ca"
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
	// The token's CA pin is the only trust: the client checks it at the
	// handshake and against the CA the answer hands over.
	cl, err := client.New(tok.Addrs, client.WithPin(tok.CAPin))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join token: %w", err)
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Join(ctx, req)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join the cluster: %w", err)
	}
	if keyPEM, err = api.EncodeKeyPEM(key); err != nil {
		return nil, nil, nil, err
	}
	caPEM, certPEM = []byte(resp.CAPEM), []byte(resp.CertPEM)
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
	cl, err := client.New(st.Addrs, client.WithTLSConfig(cfg), client.WithTimeout(60*time.Second))
	if err != nil {
		return fmt.Errorf("%s: %w", n.dir.path("join.json"), err)
	}
	defer cl.CloseIdleConnections()
	a := n.advertise()
	req := &api.VoterRequest{RaftAddr: a.Raft, APIAddr: a.API, SSHAddr: a.SSH}
	var resp *api.VoterResponse
	if err := retryFor(ctx, 2*time.Minute, func() (err error) {
		resp, err = cl.JoinAsNonvoter(ctx, req)
		return err
	}); err != nil {
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
	if err := retryFor(ctx, 2*time.Minute, func() error { return cl.Promote(ctx) }); err != nil {
		return fmt.Errorf("become a voter: %w", err)
	}
	n.logger.Info("joined the cluster as a voter")
	return os.Remove(n.dir.path("join.json"))
}

// retryFor calls call (a round over the cluster's nodes) until it succeeds,
// once a second for up to within: a leader election may be under way.
func retryFor(ctx context.Context, within time.Duration, call func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := call()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
