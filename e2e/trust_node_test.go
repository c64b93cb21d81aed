package e2e

// Trust boundaries of node certificates (docs/security.md): a node's
// certificate speaks for it only while it is for the key the node joined
// with. After n2 is removed and a fresh n2 joins, the old n2's certificate
// and key, still valid, open neither the raft port nor the API's node
// endpoints.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/rampart-ssh/rampart/client"
)

// probeNodeAPI asks n's API for a recording that does not exist through a
// node-only endpoint, presenting cert: a node the API admits is told 404,
// one it refuses 401 or 403 (or the handshake fails).
func probeNodeAPI(c *Cluster, n *Node, cert tls.Certificate) (admitted bool, detail error) {
	cl := n.NewAPI(client.WithTLSConfig(presenting(c, n, cert)))
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rec, err := cl.Recording(ctx, "no-such-session")
	if err == nil {
		rec.Close()
	}
	switch s := client.StatusOf(err); {
	case s == http.StatusNotFound:
		return true, nil
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return false, err
	case s != 0:
		return true, fmt.Errorf("got past authentication: %w", err)
	}
	return false, err
}

func TestNodeCertificateBoundToKey(t *testing.T) {
	c := NewCluster(t, "trust-node", newIPs(t, "trust-node nodes", 2)...)
	fatalIf(t, c.Start(), "start the cluster")
	n1, old := c.Nodes[0], c.Nodes[1]
	oldCert, err := old.Certificate()
	fatalIf(t, err, "the old n2's certificate")
	if ok, detail := probeRaft(c, n1, oldCert); !ok {
		t.Fatalf("n2's own certificate, while it is a member, refused on the raft port: %v", detail)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, n1.API().RemoveMember(ctx, old.ID), "remove n2")
	fatalIf(t, c.WaitMembers(waitLong, n1), "n2 removed")
	fatalIf(t, old.Kill(), "stop the old n2")

	// A fresh n2: same id, its own data dir, address and key.
	fresh := &Node{c: c, ID: old.ID, IP: newIP(t, "the new n2"), DataDir: filepath.Join(c.Dir, "n2-again")}
	c.Nodes = append(c.Nodes, fresh)
	fatalIf(t, fresh.Start("--join", c.JoinToken()), "join the new n2")
	fatalIf(t, c.WaitMembers(waitLong, n1, fresh), "the new n2 joined")
	freshCert, err := fresh.Certificate()
	fatalIf(t, err, "the new n2's certificate")

	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		probe  func(c *Cluster, n *Node, cert tls.Certificate) (bool, error)
		target *Node
		want   bool
	}{
		{"ok/raft-new-n2", freshCert, probeRaft, n1, true},
		{"ok/api-new-n2", freshCert, probeNodeAPI, n1, true},
		{"fail/raft-old-n2", oldCert, probeRaft, n1, false},
		{"fail/api-old-n2", oldCert, probeNodeAPI, n1, false},
		{"fail/raft-old-n2-at-new-n2", oldCert, probeRaft, fresh, false},
		{"fail/api-old-n2-at-new-n2", oldCert, probeNodeAPI, fresh, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admitted, detail := tc.probe(c, tc.target, tc.cert)
			if admitted != tc.want {
				t.Fatalf("admitted=%v, want %v (%v)", admitted, tc.want, detail)
			}
			if detail != nil {
				t.Logf("refused as expected: %v", detail)
			}
		})
	}
	// The refusals changed nothing: the cluster is n1 and the new n2.
	fatalIf(t, c.WaitMembers(waitLong, n1, fresh), "members after the probes")
}
