package raftstore

import "testing"

// The in-process cluster, for raftstore_test's tests that put real raft
// under a package that imports raftstore (the audit writer).

// TestCluster is testCluster, exported to the external test package.
type TestCluster = testCluster

// NewTestCluster is newTestCluster.
func NewTestCluster(tb testing.TB, n int) *TestCluster { return newTestCluster(tb, n) }

// Leader waits for the one leader and returns it.
func (c *testCluster) Leader() *Store { return c.leader() }

// Followers are the live nodes but the leader.
func (c *testCluster) Followers() []*Store { return c.followers() }

// Stop closes a node.
func (c *testCluster) Stop(s *Store) { c.stop(s) }

// Restart opens a stopped node again from its directory, on its address,
// and waits until the cluster has one leader again.
func (c *testCluster) Restart(s *Store) *Store {
	c.tb.Helper()
	id, dir, addr := s.NodeID(), s.cfg.Dir, s.cfg.AdvertiseAddr
	n := c.openNode(id, func(cfg *Config) { cfg.Dir, cfg.BindAddr, cfg.AdvertiseAddr = dir, addr, addr })
	c.joined[n] = true
	return n
}
