package raftstore

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// freeAddr returns a 127.0.0.1 address nothing listens on (a raft address
// must be known before the store opens to be written into a configuration).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// dropNodesBut is the Edit of a restore or recovery: every node record but
// self's goes, and self's is written.
func dropNodesBut(self, addr string) func(*State) ([]Command, error) {
	return func(st *State) ([]Command, error) {
		_, nodes, err := st.Nodes(nil)
		if err != nil {
			return nil, err
		}
		var cmds []Command
		for _, n := range nodes {
			if n.ID != self {
				cmds = append(cmds, &NodeDelete{ID: n.ID})
			}
		}
		return append(cmds, &NodeUpsert{Node: Node{ID: self, RaftAddr: addr}, Now: time.Now()}), nil
	}
}

// waitSoleLeader waits until s leads a configuration of itself alone.
func waitSoleLeader(t *testing.T, s *Store) {
	t.Helper()
	eventually(t, s.NodeID()+" leads alone", func() error {
		if !s.IsLeader() {
			return errors.New("not leader yet")
		}
		ms, err := s.Members()
		if err != nil {
			return err
		}
		if len(ms) != 1 || ms[0].ID != s.NodeID() || !ms[0].Voter {
			return errors.New("members are not this node alone")
		}
		return nil
	})
}

func nodeIDsOf(t *testing.T, st *State) []string {
	t.Helper()
	_, nodes, err := st.Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestBackupRestoreNewCluster(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testCtx(t)
	leader := c.leader()
	for _, cmd := range []Command{
		&ClusterInit{ClusterID: "c-test", Now: time.Now(), UIDStart: 70000, UIDEnd: 79999, GIDStart: 90000, GIDEnd: 99999, TLSCACert: "cert", TLSCAKeySealed: []byte("sealed")},
		projectCmd("web"),
	} {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	res, err := leader.Apply(ctx, projectCmd("db"))
	if err != nil {
		t.Fatal(err)
	}
	// Taken on a follower: ConsistentRead brings it up to the leader first.
	b, err := c.followers()[0].TakeBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Index < res.Index || b.Size == 0 {
		t.Fatalf("backup at index %d (%d bytes), want at least %d", b.Index, b.Size, res.Index)
	}
	rc, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(data)) != b.Size {
		t.Fatalf("read %d bytes (%v), meta says %d", len(data), err, b.Size)
	}
	if _, err := leader.Apply(ctx, projectCmd("after-backup")); err != nil {
		t.Fatal(err)
	}

	nodeTLS := issueNodeTLS(t, c.ca, "restored")
	addr := freeAddr(t)
	dir := t.TempDir()
	seed := Seed{Dir: dir, NodeID: "restored", RaftAddr: addr, Edit: dropNodesBut("restored", addr)}
	idx, err := RestoreBackup(seed, b.Index, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if idx <= b.Index {
		t.Fatalf("restored snapshot at index %d, want past the backup's %d", idx, b.Index)
	}
	if _, err := RestoreBackup(seed, b.Index, bytes.NewReader(data)); !errors.Is(err, ErrHasState) {
		t.Fatalf("second restore into the same dir: %v, want ErrHasState", err)
	}
	s := openTestStore(t, "restored", nodeTLS, func(cfg *Config) { cfg.Dir, cfg.BindAddr = dir, addr })
	defer s.Close()
	waitSoleLeader(t, s)
	st := s.State()
	for name, want := range map[string]bool{"web": true, "db": true, "after-backup": false} {
		if _, p, err := st.ProjectByName(nil, name); err != nil || (p != nil) != want {
			t.Errorf("project %s in the restored state: %v (err %v), want %v", name, p != nil, err, want)
		}
	}
	if ids := nodeIDsOf(t, st); len(ids) != 1 || ids[0] != "restored" {
		t.Errorf("restored nodes table = %v, want [restored]", ids)
	}
	r, err := s.Apply(ctx, projectCmd("new"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index <= idx {
		t.Errorf("first write of the restored cluster at index %d, want past %d", r.Index, idx)
	}
}

func TestRecoverSurvivor(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := testCtx(t)
	leader := c.leader()
	for _, name := range []string{"web", "db", "ops"} {
		if _, err := leader.Apply(ctx, projectCmd(name)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged()
	survivor := c.followers()[0]
	dir, addr := survivor.cfg.Dir, survivor.cfg.AdvertiseAddr
	for _, s := range c.live() {
		c.stop(s)
	}
	seed := Seed{Dir: dir, NodeID: survivor.NodeID(), RaftAddr: addr, Edit: dropNodesBut(survivor.NodeID(), addr)}
	idx, err := Recover(seed)
	if err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, survivor.NodeID(), issueNodeTLS(t, c.ca, survivor.NodeID()), func(cfg *Config) { cfg.Dir, cfg.BindAddr = dir, addr })
	defer s.Close()
	waitSoleLeader(t, s)
	for _, name := range []string{"web", "db", "ops"} {
		if _, p, err := s.State().ProjectByName(nil, name); err != nil || p == nil {
			t.Errorf("project %s lost in the recovery (err %v)", name, err)
		}
	}
	if ids := nodeIDsOf(t, s.State()); len(ids) != 1 || ids[0] != survivor.NodeID() {
		t.Errorf("recovered nodes table = %v, want [%s]", ids, survivor.NodeID())
	}
	r, err := s.Apply(ctx, projectCmd("after"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Index <= idx {
		t.Errorf("first write after recovery at index %d, want past %d", r.Index, idx)
	}
	if _, err := Recover(Seed{Dir: t.TempDir(), NodeID: "x", RaftAddr: addr, Edit: dropNodesBut("x", addr)}); !errors.Is(err, ErrNoState) {
		t.Errorf("recover of an empty dir: %v, want ErrNoState", err)
	}
}
