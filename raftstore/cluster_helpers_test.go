package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	gwca "github.com/rampart-ssh/rampart/gateway/ca"
)

// clusterTimeout bounds each wait of the in-process cluster tests. Raft runs
// with its default timings (1s heartbeat and election timeouts), and the
// machine may be slow and shared, with -race on top.
const clusterTimeout = 45 * time.Second

// testCluster is a set of in-process nodes on 127.0.0.1 whose certificates
// come from one test CA. It is driven from the test goroutine only.
type testCluster struct {
	tb   testing.TB
	ca   *gwca.TLSCA
	opts []func(*Config)

	// nodes holds every node opened, in order; joined marks those in the
	// raft configuration and stopped those closed.
	nodes   []*Store
	joined  map[*Store]bool
	stopped map[*Store]bool
}

// newTestCluster starts n nodes: it bootstraps the first, adds the others as
// voters through the leader, and waits until all of them agree on the leader
// and the log. opts adjust every node's Config. Every node is closed (and its
// directory removed) when the test ends.
func newTestCluster(tb testing.TB, n int, opts ...func(*Config)) *testCluster {
	tb.Helper()
	tca, err := gwca.NewTLSCA("test", time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	c := &testCluster{tb: tb, ca: tca, opts: opts, joined: map[*Store]bool{}, stopped: map[*Store]bool{}}
	first := c.openNode("node-0")
	if err := first.Bootstrap(); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	c.joined[first] = true
	eventually(tb, "node-0 leads its one-node cluster", func() error {
		if !first.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	c.register(first)
	for i := 1; i < n; i++ {
		c.join(c.openNode(fmt.Sprintf("node-%d", i)))
	}
	c.waitConverged()
	return c
}

// openNode starts a node with a certificate from the cluster's CA. It is not
// part of the raft configuration until join adds it.
func (c *testCluster) openNode(id string, opts ...func(*Config)) *Store {
	c.tb.Helper()
	s := openTestStore(c.tb, id, issueNodeTLS(c.tb, c.ca, id), append(append([]func(*Config){}, c.opts...), opts...)...)
	c.nodes = append(c.nodes, s)
	// Registered after the node's TempDir, so it runs before the directory
	// is removed.
	c.tb.Cleanup(func() { c.stop(s) })
	return s
}

// join adds s as a voter through the leader and waits until s follows it.
func (c *testCluster) join(s *Store) {
	c.tb.Helper()
	leader := c.leader()
	ctx, cancel := context.WithTimeout(c.tb.Context(), clusterTimeout)
	defer cancel()
	c.register(s)
	if err := leader.AddVoter(ctx, s.NodeID(), s.cfg.AdvertiseAddr); err != nil {
		c.tb.Fatalf("add voter %s: %v", s.NodeID(), err)
	}
	c.joined[s] = true
	eventually(c.tb, s.NodeID()+" follows the leader", func() error {
		if id, _ := s.Leader(); id != leader.NodeID() {
			return fmt.Errorf("%s sees leader %q, want %q", s.NodeID(), id, leader.NodeID())
		}
		return nil
	})
}

// register records s in the nodes table, as a node's join does, so that the
// others admit its forwarding connections.
func (c *testCluster) register(s *Store) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(c.tb.Context(), clusterTimeout)
	defer cancel()
	if _, err := c.leader().Apply(ctx, &NodeUpsert{Node: Node{ID: s.NodeID(), RaftAddr: s.cfg.AdvertiseAddr}, Now: time.Now()}); err != nil {
		c.tb.Fatalf("register %s: %v", s.NodeID(), err)
	}
}

// stop closes s, which then counts as gone; stopping a node twice is a no-op.
func (c *testCluster) stop(s *Store) {
	if c.stopped[s] {
		return
	}
	c.stopped[s] = true
	if err := s.Close(); err != nil {
		c.tb.Errorf("close %s: %v", s.NodeID(), err)
	}
}

// live returns the nodes joined and not stopped, in the order they were
// opened.
func (c *testCluster) live() []*Store {
	var out []*Store
	for _, s := range c.nodes {
		if c.joined[s] && !c.stopped[s] {
			out = append(out, s)
		}
	}
	return out
}

// leader waits until exactly one live node leads and every live node names
// it, and returns it.
func (c *testCluster) leader() *Store {
	c.tb.Helper()
	var leader *Store
	eventually(c.tb, "one leader known to every live node", func() error {
		leader = nil
		for _, s := range c.live() {
			if !s.IsLeader() {
				continue
			}
			if leader != nil {
				return fmt.Errorf("both %s and %s lead", leader.NodeID(), s.NodeID())
			}
			leader = s
		}
		if leader == nil {
			return errors.New("no live node leads")
		}
		for _, s := range c.live() {
			if id, _ := s.Leader(); id != leader.NodeID() {
				return fmt.Errorf("%s sees leader %q, want %q", s.NodeID(), id, leader.NodeID())
			}
		}
		return nil
	})
	return leader
}

// followers returns the live nodes other than the leader.
func (c *testCluster) followers() []*Store {
	c.tb.Helper()
	leader := c.leader()
	var out []*Store
	for _, s := range c.live() {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

// waitConverged waits until every live node has applied the whole log and
// their states have one digest, and returns it. raft's AppliedIndex may run
// ahead of the FSM, so a digest that differs is retried until the deadline.
func (c *testCluster) waitConverged() string {
	c.tb.Helper()
	var digest string
	eventually(c.tb, "live nodes apply the same log", func() error {
		nodes := c.live()
		var last uint64
		for _, s := range nodes {
			last = max(last, s.raft.LastIndex())
		}
		for _, s := range nodes {
			if a := s.raft.AppliedIndex(); a != last {
				return fmt.Errorf("%s applied %d of %d", s.NodeID(), a, last)
			}
		}
		digests := map[string][]string{}
		for _, s := range nodes {
			d, err := s.State().Digest()
			if err != nil {
				return fmt.Errorf("digest of %s: %w", s.NodeID(), err)
			}
			digests[d] = append(digests[d], s.NodeID())
			digest = d
		}
		if len(digests) != 1 {
			return fmt.Errorf("states differ at index %d: %v", last, digests)
		}
		return nil
	})
	return digest
}

// openTestStore opens a store for id on 127.0.0.1:0 with nodeTLS, in its own
// temporary directory. The caller closes it.
func openTestStore(tb testing.TB, id string, nodeTLS *gwca.NodeTLS, opts ...func(*Config)) *Store {
	tb.Helper()
	cfg := Config{
		NodeID:    id,
		Dir:       tb.TempDir(),
		BindAddr:  "127.0.0.1:0",
		ServerTLS: nodeTLS.RaftServer,
		ClientTLS: nodeTLS.RaftClient,
		PeerID:    testPeerID,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("open %s: %v", id, err)
	}
	return s
}

// issueNodeTLS issues a node certificate for id on 127.0.0.1 from tca and
// builds the node's TLS configurations from it.
func issueNodeTLS(tb testing.TB, tca *gwca.TLSCA, id string) *gwca.NodeTLS {
	tb.Helper()
	certPEM, keyPEM := issueTestCert(tb, tca, api.RoleNode, id)
	nt, err := gwca.NewNodeTLS(tca.CertPEM, certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("node TLS for %s: %v", id, err)
	}
	return nt
}

// issueTestCert issues a role/id certificate on 127.0.0.1 from tca and
// returns it with its key, both PEM.
func issueTestCert(tb testing.TB, tca *gwca.TLSCA, role, id string) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := gwca.NewNodeKey()
	if err != nil {
		tb.Fatal(err)
	}
	certPEM, err = tca.Issue(role, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
	if err != nil {
		tb.Fatalf("issue %s certificate for %s: %v", role, id, err)
	}
	if keyPEM, err = api.EncodeKeyPEM(key); err != nil {
		tb.Fatal(err)
	}
	return certPEM, keyPEM
}

// testKeyPair is a tls.Certificate for role/id from tca, without the checks
// NewNodeTLS makes (so it may be an agent's).
func testKeyPair(tb testing.TB, tca *gwca.TLSCA, role, id string) tls.Certificate {
	tb.Helper()
	certPEM, keyPEM := issueTestCert(tb, tca, role, id)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return pair
}

// eventually polls cond until it returns nil, failing the test with cond's
// last error once clusterTimeout has passed.
func eventually(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(clusterTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not so after %s: %v", what, clusterTimeout, err)
		}
		select {
		case <-tick.C:
		case <-tb.Context().Done():
			tb.Fatalf("%s: %v (last: %v)", what, tb.Context().Err(), err)
		}
	}
}

// countingHandler is a slog.Handler that counts records whose message starts
// with prefix and drops everything.
type countingHandler struct {
	prefix string
	n      atomic.Int64
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return nil
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// withLogger sets a node's logger.
func withLogger(h slog.Handler) func(*Config) {
	return func(cfg *Config) { cfg.Logger = slog.New(h) }
}

// testCtx returns a context for one cluster operation, ended with the test.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), clusterTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// projectCmd is a valid ProjectUpsert for name.
func projectCmd(name string) *ProjectUpsert {
	return &ProjectUpsert{Project: Project{Name: name, Description: "test project " + name}, Now: testNow}
}

// rawFrame frames payload as a command of type t at version v, unchecked.
func rawFrame(t MessageType, v byte, payload string) []byte {
	return append([]byte{byte(t), v}, payload...)
}

// frameUnchecked frames cmd without validating it, as a buggy or hostile
// client might, so that the leader's own checks are what refuse it.
func frameUnchecked(tb testing.TB, cmd Command) []byte {
	tb.Helper()
	payload, err := json.Marshal(cmd)
	if err != nil {
		tb.Fatal(err)
	}
	return rawFrame(cmd.Type(), commandVersion, string(payload))
}

// testPeerID names the node a cluster certificate belongs to, as the gateway
// does with its CA package.
func testPeerID(cert *x509.Certificate) (string, bool) {
	role, id, ok := api.Identity(cert)
	return id, ok && role == api.RoleNode
}
