package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/rampart-ssh/rampart/api"
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
