package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

// agentEvents numbers one login event per seq.
func agentEvents(seqs ...uint64) []AgentEvent {
	out := make([]AgentEvent, len(seqs))
	for i, s := range seqs {
		out[i] = AgentEvent{Seq: s, Event: AuditEventInput{Time: testNow.Add(time.Duration(s) * time.Second), Type: "sshd_login.accept", Actor: "alice",
			Fields: map[string]string{"server_id": "s1", "agent_seq": fmt.Sprint(s)}}}
	}
	return out
}

// eventsFSM is an FSM holding project web and its server s1.
func eventsFSM(t *testing.T) *FSM {
	t.Helper()
	f := testFSM(t)
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "web"}, Now: testNow})
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1"}, Now: testNow})
	return f
}

func TestAgentEventsAppendRoundTrip(t *testing.T) {
	cmd := &AgentEventsAppend{ServerID: "s1", Events: agentEvents(1, 2)}
	if newCmd, ok := commandTypes[AgentEventsAppendType]; !ok || newCmd().Type() != AgentEventsAppendType {
		t.Fatalf("type %d is not registered to AgentEventsAppend", AgentEventsAppendType)
	}
	got, err := Decode(mustEncode(t, cmd))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(cmd)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("round trip changed the command:\n%s\n%s", a, b)
	}
}

func TestAgentEventsAppendValidate(t *testing.T) {
	tooMany := make([]uint64, MaxAgentEventBatch+1)
	for i := range tooMany {
		tooMany[i] = uint64(i + 1)
	}
	bad := agentEvents(1)
	bad[0].Event.Type = "SSH login"
	cases := []struct {
		name string
		cmd  AgentEventsAppend
	}{
		{"fail/no-server", AgentEventsAppend{Events: agentEvents(1)}},
		{"fail/server-id-with-slash", AgentEventsAppend{ServerID: "a/b", Events: agentEvents(1)}},
		{"fail/empty-batch", AgentEventsAppend{ServerID: "s1"}},
		{"fail/batch-too-big", AgentEventsAppend{ServerID: "s1", Events: agentEvents(tooMany...)}},
		{"fail/seq-zero", AgentEventsAppend{ServerID: "s1", Events: agentEvents(0)}},
		{"fail/seq-repeated", AgentEventsAppend{ServerID: "s1", Events: agentEvents(1, 1)}},
		{"fail/seq-backwards", AgentEventsAppend{ServerID: "s1", Events: agentEvents(2, 1)}},
		{"fail/bad-audit-type", AgentEventsAppend{ServerID: "s1", Events: bad}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cmd.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestAgentEventsAppendExactlyOnce(t *testing.T) {
	cases := []struct {
		name    string
		batches [][]uint64
		// want is the result of the last batch, and the agent seqs the audit
		// log holds after all of them, in order.
		want      AgentEventsResult
		wantAudit []uint64
	}{
		{name: "ok/first-batch", batches: [][]uint64{{1, 2, 3}},
			want: AgentEventsResult{LastSeq: 3, Accepted: 3, AuditSeq: 3}, wantAudit: []uint64{1, 2, 3}},
		{name: "ok/redelivered-batch-skipped", batches: [][]uint64{{1, 2, 3}, {1, 2, 3}},
			want: AgentEventsResult{LastSeq: 3, Duplicates: 3}, wantAudit: []uint64{1, 2, 3}},
		{name: "ok/overlapping-batch-appends-only-new", batches: [][]uint64{{1, 2}, {2, 3, 4}},
			want: AgentEventsResult{LastSeq: 4, Accepted: 2, Duplicates: 1, AuditSeq: 4}, wantAudit: []uint64{1, 2, 3, 4}},
		{name: "ok/gap-accepted", batches: [][]uint64{{1}, {5, 9}},
			want: AgentEventsResult{LastSeq: 9, Accepted: 2, AuditSeq: 3}, wantAudit: []uint64{1, 5, 9}},
		{name: "ok/older-after-newer-skipped", batches: [][]uint64{{10}, {4, 5}},
			want: AgentEventsResult{LastSeq: 10, Duplicates: 2}, wantAudit: []uint64{10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := eventsFSM(t)
			var got *AgentEventsResult
			for _, b := range tc.batches {
				got = mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(b...)}).(*AgentEventsResult)
			}
			if *got != tc.want {
				t.Errorf("result = %+v, want %+v", *got, tc.want)
			}
			_, events, err := f.State().Audit(nil)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range events {
				var s uint64
				fmt.Sscan(e.Fields["agent_seq"], &s)
				seqs = append(seqs, s)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tc.wantAudit) {
				t.Errorf("audit holds agent seqs %v, want %v", seqs, tc.wantAudit)
			}
			if err := VerifyAuditChain(events); err != nil {
				t.Error(err)
			}
			_, srv, _ := f.State().ServerByID(nil, "s1")
			if srv.LastEventSeq != tc.want.LastSeq {
				t.Errorf("LastEventSeq = %d, want %d", srv.LastEventSeq, tc.want.LastSeq)
			}
		})
	}
}

func TestAgentEventsAppendUnknownServer(t *testing.T) {
	f := eventsFSM(t)
	res := apply(t, f, &AgentEventsAppend{ServerID: "gone", Events: agentEvents(1)})
	if !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", res.Err)
	}
	if _, events, _ := f.State().Audit(nil); len(events) != 0 {
		t.Fatalf("audit events appended for an unknown server: %d", len(events))
	}
}

// TestAgentEventsAppendQuiet checks what a batch wakes: the audit log's
// watchers, and not the watchers of the servers table (every agent's
// long-poll), whose index must not move.
func TestAgentEventsAppendQuiet(t *testing.T) {
	f := eventsFSM(t)
	st := f.State()
	serversIdx := st.MaxIndex(tableServers)
	_, before, _ := st.ServerByID(nil, "s1")
	wsTable := memdb.NewWatchSet()
	st.MaxIndexWatch(wsTable, tableServers)
	wsAudit := memdb.NewWatchSet()
	if _, _, err := st.AuditLast(wsAudit); err != nil {
		t.Fatal(err)
	}

	mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(1)})
	if got := st.MaxIndex(tableServers); got != serversIdx {
		t.Errorf("servers table index moved %d -> %d", serversIdx, got)
	}
	if fired(wsTable) {
		t.Error("the servers table's index watch fired")
	}
	if !fired(wsAudit) {
		t.Error("the audit log's watch did not fire")
	}
	_, after, _ := st.ServerByID(nil, "s1")
	if after.ModifyIndex != before.ModifyIndex || after.LastEventSeq != 1 {
		t.Errorf("server after: ModifyIndex %d (was %d), LastEventSeq %d", after.ModifyIndex, before.ModifyIndex, after.LastEventSeq)
	}

	// A batch of duplicates writes nothing at all.
	idx := st.LatestIndex()
	wsAudit = memdb.NewWatchSet()
	st.AuditLast(wsAudit)
	mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(1)})
	if fired(wsAudit) {
		t.Error("a batch of duplicates woke the audit log's watchers")
	}
	if st.LatestIndex() != idx {
		t.Errorf("a batch of duplicates moved the latest index %d -> %d", idx, st.LatestIndex())
	}
}

// TestServerUpsertKeepsLastEventSeq: an admin edit or a re-enrollment
// replaces the server record, but must not forget which events are
// recorded, or a redelivered batch would be recorded twice.
func TestServerUpsertKeepsLastEventSeq(t *testing.T) {
	f := eventsFSM(t)
	mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(1, 2)})
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.2"}, Now: testNow})
	_, srv, _ := f.State().ServerByID(nil, "s1")
	if srv.Addr != "10.0.0.2" || srv.LastEventSeq != 2 {
		t.Fatalf("after upsert: addr %s, LastEventSeq %d; want 10.0.0.2, 2", srv.Addr, srv.LastEventSeq)
	}
	res := mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(2, 3)}).(*AgentEventsResult)
	if res.Accepted != 1 || res.Duplicates != 1 {
		t.Fatalf("after upsert: %+v, want 1 accepted and 1 duplicate", res)
	}
}

// TestAgentEventsSurviveSnapshot: LastEventSeq is part of the server row, so
// a node restored from a snapshot keeps skipping what it recorded.
func TestAgentEventsSurviveSnapshot(t *testing.T) {
	f := eventsFSM(t)
	mustApply(t, f, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(1, 2, 3)})
	var buf bytes.Buffer
	tx := f.State().ReadTxn()
	if err := writeSnapshot(&buf, tx, f.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	g := testFSM(t)
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	res := apply(t, g, &AgentEventsAppend{ServerID: "s1", Events: agentEvents(3, 4)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if r := res.Value.(*AgentEventsResult); r.Accepted != 1 || r.Duplicates != 1 || r.LastSeq != 4 {
		t.Fatalf("after restore: %+v", r)
	}
}
