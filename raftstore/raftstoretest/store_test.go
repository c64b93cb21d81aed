package raftstoretest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func TestApply(t *testing.T) {
	s := raftstoretest.New(t)
	res := s.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now})
	var p raftstore.Project
	if err := res.Decode(&p); err != nil || p.Name != "web" || res.Index != 1 {
		t.Fatalf("result %+v (index %d), %v", p, res.Index, err)
	}
	if _, got, err := s.State().ProjectByName(nil, "web"); err != nil || got == nil {
		t.Fatalf("project not in the state: %v", err)
	}
	// Refused by validation, as the leader refuses it: nothing applied.
	if _, err := s.Apply(t.Context(), &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "Not A Name"}, Now: now}); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("invalid command: %v", err)
	}
	// Refused by the FSM: applied at the next index, changing nothing.
	if _, err := s.Apply(t.Context(), &raftstore.EntitlementDelete{Name: "ghost"}); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("delete of nothing: %v", err)
	}
	if s.Applied() != 2 || s.FSM().AppliedIndex() != 2 {
		t.Fatalf("applied %d, index %d; want 2, 2", s.Applied(), s.FSM().AppliedIndex())
	}
	if err := s.WaitApplied(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitApplied(t.Context(), 3); err == nil {
		t.Fatal("WaitApplied for an index never applied returned nil")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Apply(ctx, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now}); !errors.Is(err, context.Canceled) {
		t.Fatalf("apply with a cancelled context: %v", err)
	}
}

func TestRefuseApply(t *testing.T) {
	s := raftstoretest.New(t)
	s.RefuseApply(func(c raftstore.Command) error {
		if _, ok := c.(*raftstore.AuditAppend); ok {
			return raftstore.ErrNoLeader
		}
		return nil
	})
	if _, err := s.Apply(t.Context(), &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Type: "x.y", Actor: "a", Time: now}}}); !errors.Is(err, raftstore.ErrNoLeader) {
		t.Fatalf("refused audit append: %v", err)
	}
	s.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now})
	s.RefuseApply(nil)
	s.MustApply(t, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Type: "x.y", Actor: "a", Time: now}}})
	if s.Applied() != 2 {
		t.Fatalf("applied %d, want 2 (the refused one never reached the FSM)", s.Applied())
	}
}

func TestNodeRole(t *testing.T) {
	s := raftstoretest.New(t, raftstoretest.WithNodeID("n2"), raftstoretest.WithRaftAddr("127.0.0.2:8300"))
	if id, addr := s.Leader(); !s.IsLeader() || s.NodeID() != "n2" || id != "n2" || addr != "127.0.0.2:8300" {
		t.Fatalf("leader %q %q, IsLeader %v, NodeID %q", id, addr, s.IsLeader(), s.NodeID())
	}
	if err := s.CheckFresh(); err != nil {
		t.Fatal(err)
	}
	if err := s.ConsistentRead(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status()
	if err != nil || st.State != "Leader" || st.LeaderID != "n2" || len(st.Members) != 1 || !st.Members[0].Leader || st.StateDigest == "" {
		t.Fatalf("status %+v, %v", st, err)
	}

	s.SetLeader(false)
	s.SetStale(true)
	s.SetReadErr(raftstore.ErrNoLeader)
	if id, addr := s.Leader(); s.IsLeader() || id != "" || addr != "" {
		t.Fatalf("follower: leader %q %q, IsLeader %v", id, addr, s.IsLeader())
	}
	if err := s.CheckFresh(); !errors.Is(err, raftstore.ErrStaleRead) {
		t.Fatalf("CheckFresh = %v", err)
	}
	if err := s.ConsistentRead(t.Context()); !errors.Is(err, raftstore.ErrNoLeader) {
		t.Fatalf("ConsistentRead = %v", err)
	}
	if st, err := s.Status(); err != nil || st.State != "Follower" || st.LeaderID != "" {
		t.Fatalf("status %+v, %v", st, err)
	}
	// A follower's writes still land: the real store forwards them.
	s.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now})
}

// Writes from many goroutines are serialised, each at its own index.
func TestConcurrentApply(t *testing.T) {
	s := raftstoretest.New(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			name := string(rune('a'+i)) + "-proj"
			if _, err := s.Apply(t.Context(), &raftstore.ProjectUpsert{Project: raftstore.Project{Name: name}, Now: now}); err != nil {
				t.Error(err)
			}
			_ = s.IsLeader()
			_, _ = s.Status()
		})
	}
	wg.Wait()
	if _, ps, err := s.State().Projects(nil); err != nil || len(ps) != 16 || s.FSM().AppliedIndex() != 16 {
		t.Fatalf("%d projects at index %d, %v", len(ps), s.FSM().AppliedIndex(), err)
	}
}

// Membership calls change the configuration Status reports, and are recorded.
func TestMembership(t *testing.T) {
	s := raftstoretest.New(t, raftstoretest.WithMembers(
		raftstore.Member{ID: "n1", RaftAddr: "127.0.0.1:8300", Voter: true},
		raftstore.Member{ID: "n2", RaftAddr: "127.0.0.2:8300", Voter: true},
	))
	s.MustApply(t, &raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:8300", APIAddr: "127.0.0.2:8443", SSHAddr: "127.0.0.2:2222"}, Now: now})
	members := func() []raftstore.Member {
		t.Helper()
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Members
	}
	want := []raftstore.Member{
		{ID: "n1", RaftAddr: "127.0.0.1:8300", Voter: true, Leader: true},
		{ID: "n2", RaftAddr: "127.0.0.2:8300", APIAddr: "127.0.0.2:8443", SSHAddr: "127.0.0.2:2222", Voter: true},
	}
	if got := members(); !slices.Equal(got, want) {
		t.Fatalf("members %+v, want %+v", got, want)
	}

	idx, err := s.AddNonvoter(t.Context(), "n3", "127.0.0.3:8300")
	if err != nil || idx != s.FSM().AppliedIndex() {
		t.Fatalf("AddNonvoter = %d, %v; want %d", idx, err, s.FSM().AppliedIndex())
	}
	if got := members(); len(got) != 3 || got[2] != (raftstore.Member{ID: "n3", RaftAddr: "127.0.0.3:8300"}) {
		t.Fatalf("after AddNonvoter: %+v", got)
	}
	if err := s.AddVoter(t.Context(), "n3", "127.0.0.3:8300"); err != nil {
		t.Fatal(err)
	}
	// A voter added again as a non-voter stays a voter.
	if _, err := s.AddNonvoter(t.Context(), "n3", "127.0.0.3:8300"); err != nil {
		t.Fatal(err)
	}
	if got := members(); len(got) != 3 || !got[2].Voter {
		t.Fatalf("after AddVoter: %+v", got)
	}
	if err := s.RemoveServer(t.Context(), "n2"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveServer(t.Context(), "n9"); err != nil {
		t.Fatalf("removing a node not in the configuration: %v", err)
	}
	if got := members(); len(got) != 2 || got[0].ID != "n1" || got[1].ID != "n3" {
		t.Fatalf("after RemoveServer: %+v", got)
	}
	calls := []string{"nonvoter n3 127.0.0.3:8300", "voter n3 127.0.0.3:8300", "nonvoter n3 127.0.0.3:8300", "remove n2", "remove n9"}
	if got := s.MembershipCalls(); !slices.Equal(got, calls) {
		t.Fatalf("calls %q, want %q", got, calls)
	}

	// Refused without an id or address, and not recorded.
	if _, err := s.AddNonvoter(t.Context(), "n4", ""); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("AddNonvoter without an address: %v", err)
	}
	if err := s.AddVoter(t.Context(), "", "127.0.0.4:8300"); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("AddVoter without an id: %v", err)
	}
	if err := s.RemoveServer(t.Context(), ""); !errors.Is(err, raftstore.ErrInvalid) {
		t.Fatalf("RemoveServer without an id: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.RemoveServer(ctx, "n3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("RemoveServer with a cancelled context: %v", err)
	}
	if got := s.MembershipCalls(); len(got) != len(calls) {
		t.Fatalf("refused calls recorded: %q", got)
	}

	// A follower knows no leader: no member is marked as one.
	s.SetLeader(false)
	for _, m := range members() {
		if m.Leader {
			t.Fatalf("follower reports leader %+v", m)
		}
	}
}
