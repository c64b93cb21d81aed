package raftstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/rpc"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	gwca "github.com/rampart-ssh/rampart/gateway/ca"
)

// These tests run real three-node clusters over mutual TLS on 127.0.0.1.
// Each starts its own cluster (a few seconds with raft's default timings),
// so cases that can share one run as subtests over it, in order.

func TestApplyReplicatesToEveryNode(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, fs := c.leader(), c.followers()
	cases := []struct {
		name string
		via  *Store
	}{
		{name: "ok/via-leader", via: leader},
		{name: "ok/via-follower-forwarded", via: fs[0]},
		{name: "ok/via-other-follower-forwarded", via: fs[1]},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("replicated-%d", i)
			res, err := tc.via.Apply(testCtx(t), projectCmd(name))
			if err != nil {
				t.Fatalf("apply via %s: %v", tc.via.NodeID(), err)
			}
			var got Project
			if err := res.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Name != name || got.CreateIndex != res.Index || res.Index == 0 {
				t.Fatalf("result = %+v at index %d, want project %s created at that index", got, res.Index, name)
			}
			c.waitConverged()
			for _, s := range c.live() {
				_, p, err := s.State().ProjectByName(nil, name)
				if err != nil || p == nil || p.ModifyIndex != res.Index {
					t.Fatalf("%s: project %s = %+v, %v; want it at index %d", s.NodeID(), name, p, err, res.Index)
				}
			}
		})
	}
}

func TestApplyRawRefusesBadFrames(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, follower := c.leader(), c.followers()[0]
	valid, err := Encode(projectCmd("frames"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{name: "fail/empty", frame: nil, want: ErrCorruptCommand},
		{name: "fail/truncated-header", frame: valid[:1], want: ErrCorruptCommand},
		{name: "fail/truncated-payload", frame: valid[:len(valid)-3], want: ErrCorruptCommand},
		{name: "fail/corrupt-payload", frame: rawFrame(ProjectUpsertType, commandVersion, "{not json"), want: ErrCorruptCommand},
		// A field this node does not know is a newer version's: refused before the
		// log as such (a leader never proposes what it cannot apply).
		{name: "fail/unknown-field", frame: rawFrame(ProjectUpsertType, commandVersion, `{"Project":{"Name":"x"},"Extra":1}`), want: ErrFutureVersion},
		{name: "fail/trailing-data", frame: append(slices.Clone(valid), " {}"...), want: ErrCorruptCommand},
		{name: "fail/version-zero", frame: rawFrame(ProjectUpsertType, 0, "{}"), want: ErrCorruptCommand},
		{name: "fail/future-version", frame: rawFrame(ProjectUpsertType, commandVersion+1, "{}"), want: ErrFutureVersion},
		{name: "fail/unknown-type", frame: rawFrame(127, commandVersion, "{}"), want: ErrUnknownCommand},
		// The ignore bit lets an old follower skip what a newer leader
		// wrote; it does not let a leader propose what it cannot apply.
		{name: "fail/unknown-type-ignorable", frame: rawFrame(IgnoreUnknownFlag|127, commandVersion, "{}"), want: ErrUnknownCommand},
		{name: "fail/invalid-command", frame: frameUnchecked(t, projectCmd("Not Valid")), want: ErrInvalid},
	}
	type indexes struct{ log, state uint64 }
	snapshot := func() map[string]indexes {
		out := map[string]indexes{}
		for _, s := range c.live() {
			out[s.NodeID()] = indexes{log: s.raft.LastIndex(), state: s.State().LatestIndex()}
		}
		return out
	}
	start := snapshot()
	for _, via := range []*Store{leader, follower} {
		role := "leader"
		if via != leader {
			role = "follower"
		}
		for _, tc := range cases {
			t.Run(tc.name+"/via-"+role, func(t *testing.T) {
				before := snapshot()
				_, err := via.ApplyRaw(testCtx(t), tc.frame)
				if !errors.Is(err, tc.want) {
					t.Fatalf("ApplyRaw = %v, want %v", err, tc.want)
				}
				if after := snapshot(); !maps.Equal(before, after) {
					t.Fatalf("indexes moved: before %v, after %v", before, after)
				}
			})
		}
	}
	t.Run("ok/valid-frame-via-follower", func(t *testing.T) {
		res, err := follower.ApplyRaw(testCtx(t), valid)
		if err != nil {
			t.Fatal(err)
		}
		c.waitConverged()
		// Exactly one entry entered the log during this test: the valid one.
		for _, s := range c.live() {
			if got, want := s.raft.LastIndex(), start[s.NodeID()].log+1; got != want || res.Index != want {
				t.Fatalf("%s: last index %d, result index %d; want %d", s.NodeID(), got, res.Index, want)
			}
		}
	})
}

func TestForwardedErrorsKeepSentinel(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, follower := c.leader(), c.followers()[0]
	initCmd := func(id string) *ClusterInit {
		return &ClusterInit{ClusterID: id, Now: testNow, UIDStart: 10000, UIDEnd: 20000, GIDStart: 10000, GIDEnd: 20000,
			TLSCACert: "cert", TLSCAKeySealed: []byte{1}}
	}
	tokenHash := strings.Repeat("ab", 32)
	setup := []Command{
		initCmd("cluster-a"),
		&TokenCreate{Token: Token{Hash: tokenHash, Kind: TokenJoin, UsesLeft: 1, ExpiresAt: testNow.Add(time.Minute)}, Now: testNow},
	}
	for _, cmd := range setup {
		if _, err := leader.Apply(testCtx(t), cmd); err != nil {
			t.Fatalf("setup %T: %v", cmd, err)
		}
	}
	cases := []struct {
		name     string
		run      func(s *Store) error
		want     error
		wantText string
	}{
		{
			// Framed unchecked: Apply would refuse it locally before forwarding.
			name: "fail/invalid-project-name",
			run: func(s *Store) error {
				_, err := s.ApplyRaw(testCtx(t), frameUnchecked(t, projectCmd("Not Valid")))
				return err
			},
			want: ErrInvalid, wantText: `project name "Not Valid"`,
		},
		{
			name: "fail/conflict-cluster-id",
			run: func(s *Store) error {
				_, err := s.Apply(testCtx(t), initCmd("cluster-b"))
				return err
			},
			want: ErrConflict, wantText: "already initialised as cluster-a",
		},
		{
			name: "fail/not-found-project",
			run: func(s *Store) error {
				_, err := s.Apply(testCtx(t), &ProjectDelete{Name: "absent"})
				return err
			},
			want: ErrNotFound, wantText: "project absent",
		},
		{
			name: "fail/expired-token",
			run: func(s *Store) error {
				_, err := s.Apply(testCtx(t), &TokenUse{Hash: tokenHash, Kind: TokenJoin, Now: testNow.Add(2 * time.Minute)})
				return err
			},
			want: ErrExpired, wantText: "join token",
		},
		{
			name: "fail/remove-server-without-id",
			run:  func(s *Store) error { return s.RemoveServer(testCtx(t), "") },
			want: ErrInvalid, wantText: "node id is required",
		},
	}
	for _, tc := range cases {
		for _, via := range []*Store{leader, follower} {
			role := "via-leader"
			if via != leader {
				role = "via-follower"
			}
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				err := tc.run(via)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Fatalf("err = %q, want it to say %q", err, tc.wantText)
				}
				// A sentinel matches only its own kind after the trip.
				for _, other := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrExpired, ErrNoLeader} {
					if other != tc.want && errors.Is(err, other) {
						t.Fatalf("err = %v also matches %v", err, other)
					}
				}
			})
		}
	}
}

func TestConsistentReadSeesLatestWrite(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, fs := c.leader(), c.followers()
	smallWrite := func(name string) Command { return projectCmd(name) }
	// A write whose apply takes a while (10,000 events to hash) keeps the
	// follower's FSM busy after raft has counted the entry as applied.
	largeWrite := func(name string) Command {
		evs := make([]AuditEventInput, MaxAuditBatch)
		for i := range evs {
			evs[i] = AuditEventInput{Time: testNow, Type: "test.large", Actor: name}
		}
		evs[len(evs)-1].Fields = map[string]string{"name": name}
		return &AuditAppend{Events: evs}
	}
	seen := func(s *Store, cmd Command, name string) bool {
		if _, ok := cmd.(*AuditAppend); ok {
			_, last, err := s.State().AuditLast(nil)
			return err == nil && last != nil && last.Fields["name"] == name
		}
		_, p, err := s.State().ProjectByName(nil, name)
		return err == nil && p != nil
	}
	cases := []struct {
		name        string
		write, read *Store
		cmd         func(name string) Command
		rounds      int
	}{
		{name: "ok/write-leader-read-follower", write: leader, read: fs[0], cmd: smallWrite, rounds: 50},
		{name: "ok/write-follower-read-other-follower", write: fs[1], read: fs[0], cmd: smallWrite, rounds: 50},
		{name: "ok/write-follower-read-leader", write: fs[0], read: leader, cmd: smallWrite, rounds: 50},
		{name: "ok/large-write-leader-read-follower", write: leader, read: fs[0], cmd: largeWrite, rounds: 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Many rounds, so that a read which did not wait would be caught
			// in the window where the reader has yet to apply the write.
			for i := range tc.rounds {
				name := fmt.Sprintf("cr-%s-%d", tc.read.NodeID(), i)
				cmd := tc.cmd(name)
				if _, err := tc.write.Apply(testCtx(t), cmd); err != nil {
					t.Fatal(err)
				}
				if err := tc.read.ConsistentRead(testCtx(t)); err != nil {
					t.Fatalf("consistent read on %s: %v", tc.read.NodeID(), err)
				}
				if seen(tc.read, cmd, name) {
					continue
				}
				t.Fatalf("round %d: %s returned from ConsistentRead before applying the write it had to wait for", i, tc.read.NodeID())
			}
		})
	}
}

func TestCheckFresh(t *testing.T) {
	// skew moves every node's clock forward, as if no leader had been heard
	// from for that long.
	var skew atomic.Int64
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxStale = time.Second
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	leader, fs := c.leader(), c.followers()
	cases := []struct {
		name string
		node *Store
		skew time.Duration
		want error
	}{
		{name: "ok/leader", node: leader},
		{name: "ok/follower-in-contact", node: fs[0]},
		{name: "ok/other-follower-in-contact", node: fs[1]},
		{name: "ok/leader-whatever-the-clock", node: leader, skew: time.Hour},
		{name: "fail/follower-clock-past-max-stale", node: fs[0], skew: 5 * time.Second, want: ErrStaleRead},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			skew.Store(int64(tc.skew))
			defer skew.Store(0)
			// A follower's last contact is set by the next heartbeat, so wait
			// for the answer rather than take the first one.
			eventually(t, "CheckFresh on "+tc.node.NodeID(), func() error {
				if err := tc.node.CheckFresh(); !errors.Is(err, tc.want) {
					return fmt.Errorf("CheckFresh = %v, want %v", err, tc.want)
				}
				return nil
			})
		})
	}
	t.Run("fail/follower-cut-off-from-leader", func(t *testing.T) {
		alone := fs[0]
		c.stop(leader)
		c.stop(fs[1])
		eventually(t, "CheckFresh on the last node refuses", func() error {
			if err := alone.CheckFresh(); !errors.Is(err, ErrStaleRead) {
				return fmt.Errorf("CheckFresh = %v, want %v", err, ErrStaleRead)
			}
			return nil
		})
	})
}

func TestLeaderFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	old, fs := c.leader(), c.followers()
	// A forwarded write leaves fs[0] with an open forwarding connection to
	// the old leader.
	if _, err := fs[0].Apply(testCtx(t), projectCmd("before")); err != nil {
		t.Fatal(err)
	}
	want := []string{"before"}
	c.stop(old)

	t.Run("ok/write-during-election-via-follower", func(t *testing.T) {
		// Sent at once, while fs[0] may still name the old leader: it must
		// wait out the election and go to the new leader.
		_, err := fs[0].Apply(testCtx(t), projectCmd("during-election"))
		if err != nil {
			t.Fatalf("write via %s after the leader closed: %v", fs[0].NodeID(), err)
		}
		want = append(want, "during-election")
	})
	t.Run("ok/new-leader-elected", func(t *testing.T) {
		if leader := c.leader(); leader == old {
			t.Fatalf("old leader %s still leads", old.NodeID())
		}
	})
	t.Run("ok/writes-via-each-remaining-node", func(t *testing.T) {
		for i, s := range fs {
			name := fmt.Sprintf("after-%d", i)
			if _, err := s.Apply(testCtx(t), projectCmd(name)); err != nil {
				t.Fatalf("write via %s: %v", s.NodeID(), err)
			}
			want = append(want, name)
		}
		c.waitConverged()
		for _, s := range c.live() {
			for _, name := range want {
				if _, p, err := s.State().ProjectByName(nil, name); err != nil || p == nil {
					t.Fatalf("%s lacks project %s (%v)", s.NodeID(), name, err)
				}
			}
		}
	})
}

func TestRemoveServerAndTransferLeadership(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, fs := c.leader(), c.followers()
	stay, gone := fs[0], fs[1]

	t.Run("fail/transfer-from-follower", func(t *testing.T) {
		if err := stay.TransferLeadership(); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("TransferLeadership on a follower = %v, want %v", err, ErrNotLeader)
		}
	})
	t.Run("ok/remove-via-follower", func(t *testing.T) {
		if err := stay.RemoveServer(testCtx(t), gone.NodeID()); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Store{leader, stay} {
			eventually(t, s.NodeID()+" sees two members", func() error {
				ms, err := s.Members()
				if err != nil {
					return err
				}
				if ids := memberIDs(ms); !slices.Equal(ids, sortedIDs(leader, stay)) {
					return fmt.Errorf("members %v", ids)
				}
				return nil
			})
		}
		c.stop(gone)
	})
	t.Run("ok/transfer-leadership", func(t *testing.T) {
		if err := leader.TransferLeadership(); err != nil {
			t.Fatal(err)
		}
		if got := c.leader(); got != stay {
			t.Fatalf("leader is %s, want %s", got.NodeID(), stay.NodeID())
		}
		// The old leader now forwards.
		if _, err := leader.Apply(testCtx(t), projectCmd("after-transfer")); err != nil {
			t.Fatal(err)
		}
		c.waitConverged()
	})
}

func memberIDs(ms []Member) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func sortedIDs(nodes ...*Store) []string {
	var ids []string
	for _, s := range nodes {
		ids = append(ids, s.NodeID())
	}
	slices.Sort(ids)
	return ids
}

func TestForeignCertificateCannotJoin(t *testing.T) {
	refusedByCluster := &countingHandler{prefix: "refused node connection"}
	c := newTestCluster(t, 3, withLogger(refusedByCluster))
	leader := c.leader()
	foreignCA, err := gwca.NewTLSCA("other", time.Now)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("fail/add-voter-with-foreign-cert", func(t *testing.T) {
		refusedByForeign := &countingHandler{prefix: "refused node connection"}
		foreign := openTestStore(t, "node-foreign", issueNodeTLS(t, foreignCA, "node-foreign"), withLogger(refusedByForeign))
		t.Cleanup(func() { foreign.Close() })
		// Raft commits the new configuration with the three voters it has
		// (three of four is a quorum); it does not wait for the new voter to
		// be reachable. What must not happen is replication to it.
		if err := leader.AddVoter(testCtx(t), foreign.NodeID(), foreign.cfg.AdvertiseAddr); err != nil {
			t.Logf("AddVoter of the foreign node: %v", err)
		}
		eventually(t, "the foreign node refuses the leader's connections", func() error {
			if refusedByForeign.n.Load() == 0 {
				return errors.New("no refused handshake yet")
			}
			return nil
		})
		if _, err := leader.Apply(testCtx(t), projectCmd("still-working")); err != nil {
			t.Fatalf("cluster stopped accepting writes: %v", err)
		}
		if id, _ := foreign.Leader(); id != "" || foreign.raft.LastIndex() != 0 || foreign.State().LatestIndex() != 0 {
			t.Fatalf("foreign node got cluster data: leader %q, log %d, state %d", id, foreign.raft.LastIndex(), foreign.State().LatestIndex())
		}
		if err := leader.RemoveServer(testCtx(t), foreign.NodeID()); err != nil {
			t.Fatalf("remove the foreign node: %v", err)
		}
		c.waitConverged()
	})

	clusterPool := issueNodeTLS(t, c.ca, "probe").Pool
	// Each probe trusts the cluster's server certificate, so only the
	// cluster node's check of the client certificate can refuse it.
	probe := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: clusterPool, ServerName: "127.0.0.1", Certificates: certs}
	}
	// The probe is a member (in the nodes table, with its key); "ghost" has
	// a valid node certificate from the cluster CA but is not, or no longer,
	// a member; "probe" with another key is an earlier node of that id.
	probeCert := testKeyPair(t, c.ca, api.RoleNode, "probe")
	probeLeaf, err := x509.ParseCertificate(probeCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	probeKey, err := HashNodeKey(probeLeaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Apply(testCtx(t), &NodeUpsert{Node: Node{ID: "probe", RaftAddr: "127.0.0.1:1", KeyHash: probeKey}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{name: "ok/cluster-node-cert", cfg: probe(probeCert), ok: true},
		{name: "fail/member-cert-for-another-key", cfg: probe(testKeyPair(t, c.ca, api.RoleNode, "probe"))},
		{name: "fail/non-member-node-cert", cfg: probe(testKeyPair(t, c.ca, api.RoleNode, "ghost"))},
		{name: "fail/foreign-ca-node-cert", cfg: probe(testKeyPair(t, foreignCA, api.RoleNode, "probe"))},
		{name: "fail/cluster-agent-cert", cfg: probe(testKeyPair(t, c.ca, api.RoleAgent, "probe"))},
		{name: "fail/no-client-cert", cfg: probe()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := refusedByCluster.n.Load()
			var reply ForwardReply
			err := callForward(leader.cfg.AdvertiseAddr, tc.cfg, "Forward.ReadIndex", &reply)
			if tc.ok {
				if err != nil || reply.ErrCode != "" || reply.Index == 0 {
					t.Fatalf("ReadIndex over the raft port = %+v, %v; want an index", reply, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadIndex over the raft port succeeded (%+v); want the connection refused", reply)
			}
			eventually(t, "the leader logs the refusal", func() error {
				if refusedByCluster.n.Load() == before {
					return errors.New("nothing logged")
				}
				return nil
			})
		})
	}
}

// callForward dials a node's raft port with cfg, announces the forwarding
// protocol and makes one rpc call on it.
func callForward(addr string, cfg *tls.Config, method string, reply *ForwardReply) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Bounds the call, however the server ends it.
	if err := conn.SetDeadline(time.Now().Add(clusterTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte{protoForward}); err != nil {
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return err
	}
	if ack[0] != forwardAccepted {
		return fmt.Errorf("forwarding not accepted: %q", ack[0])
	}
	client := rpc.NewClient(conn)
	defer client.Close()
	return client.Call(method, &ForwardArgs{}, reply)
}

func TestStatus(t *testing.T) {
	c := newTestCluster(t, 3)
	leader, fs := c.leader(), c.followers()
	res, err := fs[0].Apply(testCtx(t), &NodeUpsert{Node: Node{ID: leader.NodeID(), RaftAddr: leader.cfg.AdvertiseAddr, APIAddr: "127.0.0.1:8443"}, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	digest := c.waitConverged()
	cases := []struct {
		name      string
		node      *Store
		wantState string
	}{
		{name: "ok/leader", node: leader, wantState: "Leader"},
		{name: "ok/follower", node: fs[0], wantState: "Follower"},
		{name: "ok/other-follower", node: fs[1], wantState: "Follower"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.node.Status()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case st.NodeID != tc.node.NodeID() || st.State != tc.wantState:
				t.Fatalf("node %s state %s, want %s %s", st.NodeID, st.State, tc.node.NodeID(), tc.wantState)
			case st.LeaderID != leader.NodeID() || st.LeaderAddr != leader.cfg.AdvertiseAddr:
				t.Fatalf("leader %s at %s, want %s at %s", st.LeaderID, st.LeaderAddr, leader.NodeID(), leader.cfg.AdvertiseAddr)
			case st.Term == 0:
				t.Fatal("term 0")
			case st.AppliedIndex < res.Index || st.AppliedIndex > st.CommitIndex || st.CommitIndex > st.LastIndex:
				t.Fatalf("indexes applied %d, commit %d, last %d; want applied ≥ %d and applied ≤ commit ≤ last",
					st.AppliedIndex, st.CommitIndex, st.LastIndex, res.Index)
			case st.StateDigest != digest:
				t.Fatalf("digest %s, want %s", st.StateDigest, digest)
			case len(st.Members) != 3:
				t.Fatalf("members %+v, want 3", st.Members)
			}
			for _, m := range st.Members {
				var node *Store
				for _, s := range c.live() {
					if s.NodeID() == m.ID {
						node = s
					}
				}
				wantAPI := ""
				if node == leader {
					wantAPI = "127.0.0.1:8443"
				}
				if node == nil || !m.Voter || m.Leader != (node == leader) || m.RaftAddr != node.cfg.AdvertiseAddr || m.APIAddr != wantAPI {
					t.Fatalf("member %+v does not match its node", m)
				}
			}
		})
	}
}

func TestSnapshotInstallsOnNewNode(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	// Keep few entries after a snapshot, so that a node joining later cannot
	// be sent the log and must be sent the snapshot.
	rc := leader.raft.ReloadableConfig()
	rc.TrailingLogs = 4
	if err := leader.raft.ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := leader.Apply(testCtx(t), projectCmd(fmt.Sprintf("snap-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, err := leader.boltStore.FirstIndex(); err != nil || first <= 1 {
		t.Fatalf("leader's log starts at %d (%v); want it compacted", first, err)
	}

	fresh := c.openNode("node-fresh")
	// A watcher on the empty node must wake when the snapshot replaces its
	// state, and read the restored projects.
	woke := make(chan error, 1)
	go func() {
		idx, err := BlockingQuery(t.Context(), fresh.FSM(), 1, time.Minute, func(ws memdb.WatchSet, s *State) (uint64, error) {
			idx, _, err := s.Projects(ws)
			return idx, err
		})
		if err == nil && idx <= 1 {
			err = fmt.Errorf("woke with index %d", idx)
		}
		woke <- err
	}()
	c.join(fresh)
	digest := c.waitConverged()
	if d, _ := fresh.State().Digest(); d != digest {
		t.Fatalf("fresh node digest %s, want %s", d, digest)
	}
	snaps, err := fresh.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("fresh node has no snapshot (%v): it was not installed", err)
	}
	if _, p, _ := fresh.State().ProjectByName(nil, "snap-0"); p == nil {
		t.Fatal("fresh node lacks project snap-0")
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("watcher on the fresh node: %v", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("watcher on the fresh node did not wake on restore")
	}
}
