package raftstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func auditInputs(n int, typ string) []AuditEventInput {
	out := make([]AuditEventInput, n)
	for i := range out {
		out[i] = AuditEventInput{Time: testNow.Add(time.Duration(i) * time.Millisecond), Type: typ, Actor: "alice",
			Fields: map[string]string{"server": "web-1", "n": fmt.Sprint(i)}}
	}
	return out
}

func TestAuditAppend(t *testing.T) {
	cases := []struct {
		name     string
		prior    int // events appended before the case
		events   []AuditEventInput
		wantErr  error
		wantLast uint64
		// onlyEncode: JSON turns invalid UTF-8 into U+FFFD, so such bytes
		// never reach the FSM; Encode (Validate) is what must refuse them.
		onlyEncode bool
	}{
		{name: "ok/first-batch-starts-at-1", events: auditInputs(3, "login.ok"), wantLast: 3},
		{name: "ok/batch-continues-chain", prior: 2, events: auditInputs(2, "session.open"), wantLast: 4},
		{name: "ok/no-fields-no-actor", events: []AuditEventInput{{Time: testNow, Type: "cluster.init"}}, wantLast: 1},
		{name: "ok/max-batch", events: auditInputs(MaxAuditBatch, "x"), wantLast: MaxAuditBatch},
		{name: "fail/empty-batch", events: nil, wantErr: ErrInvalid},
		{name: "fail/batch-too-big", events: auditInputs(MaxAuditBatch+1, "x"), wantErr: ErrInvalid},
		{name: "fail/upper-case-type", events: auditInputs(1, "Login"), wantErr: ErrInvalid},
		{name: "fail/empty-type", events: auditInputs(1, ""), wantErr: ErrInvalid},
		{name: "fail/type-with-space", events: auditInputs(1, "login ok"), wantErr: ErrInvalid},
		{name: "fail/empty-field-key", events: []AuditEventInput{{Time: testNow, Type: "x", Fields: map[string]string{"": "v"}}}, wantErr: ErrInvalid},
		{name: "fail/no-time", events: []AuditEventInput{{Type: "x"}}, wantErr: ErrInvalid},
		{name: "fail/invalid-utf8-value", events: []AuditEventInput{{Time: testNow, Type: "x", Fields: map[string]string{"k": "\xff"}}}, wantErr: ErrInvalid, onlyEncode: true},
		{name: "fail/invalid-utf8-actor", events: []AuditEventInput{{Time: testNow, Type: "x", Actor: "\xc3"}}, wantErr: ErrInvalid, onlyEncode: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			if tc.prior > 0 {
				mustApply(t, f, &AuditAppend{Events: auditInputs(tc.prior, "login.ok")})
			}
			if tc.wantErr != nil {
				if _, err := Encode(&AuditAppend{Events: tc.events}); !errors.Is(err, tc.wantErr) {
					t.Fatalf("Encode: err = %v, want %v", err, tc.wantErr)
				}
				if tc.onlyEncode {
					return
				}
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &AuditAppend{Events: tc.events})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused write moved the index")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if head := res.Value.(*AuditEvent); head.Seq != tc.wantLast {
				t.Fatalf("head seq %d, want %d", head.Seq, tc.wantLast)
			}
			_, all, err := f.State().Audit(nil)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(all)) != tc.wantLast {
				t.Fatalf("%d events stored, want %d", len(all), tc.wantLast)
			}
			if all[0].PrevHash != AuditZeroHash {
				t.Fatalf("first prev hash %q", all[0].PrevHash)
			}
			if err := VerifyAuditChain(all); err != nil {
				t.Fatal(err)
			}
			_, last, _ := f.State().AuditLast(nil)
			if last == nil || last.Seq != tc.wantLast || last.Hash != all[len(all)-1].Hash {
				t.Fatalf("AuditLast = %+v", last)
			}
		})
	}
}

func TestAuditAppendCopiesFields(t *testing.T) {
	f := testFSM(t)
	in := auditInputs(1, "x")
	tx := f.State().newWriteTxn(1)
	defer tx.Abort()
	if _, err := (&AuditAppend{Events: in}).apply(tx); err != nil {
		t.Fatal(err)
	}
	in[0].Fields["server"] = "changed"
	raw, err := tx.First(tableAudit, "id", uint64(1))
	if err != nil {
		t.Fatal(err)
	}
	if e := raw.(*AuditEvent); e.Fields["server"] != "web-1" || AuditHash(e) != e.Hash {
		t.Fatalf("stored event shares the command's map: %+v", e.Fields)
	}
}

func mustEncode(t testing.TB, cmd Command) []byte {
	t.Helper()
	buf, err := Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// auditChain appends n events and returns the stored chain.
func auditChain(t *testing.T, n int) []*AuditEvent {
	t.Helper()
	f := testFSM(t)
	mustApply(t, f, &AuditAppend{Events: auditInputs(n, "session.open")})
	_, all, err := f.State().Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestVerifyAuditChain(t *testing.T) {
	// edit returns a copy of the chain with event i (0-based) changed by fn,
	// leaving the stored rows alone.
	edit := func(chain []*AuditEvent, i int, fn func(e *AuditEvent)) []*AuditEvent {
		out := append([]*AuditEvent(nil), chain...)
		e := *out[i]
		fn(&e)
		out[i] = &e
		return out
	}
	chain := auditChain(t, 5)
	cases := []struct {
		name    string
		events  []*AuditEvent
		wantSeq uint64 // 0: the chain verifies
		wantMsg string
	}{
		{name: "ok/intact", events: chain},
		{name: "ok/empty", events: nil},
		{name: "fail/gap", events: append(append([]*AuditEvent(nil), chain[:2]...), chain[3:]...), wantSeq: 3, wantMsg: "missing"},
		{name: "fail/first-event-removed", events: chain[1:], wantSeq: 1, wantMsg: "missing"},
		{name: "fail/field-edited", events: edit(chain, 3, func(e *AuditEvent) { e.Fields = map[string]string{"server": "db-1"} }), wantSeq: 4, wantMsg: "hash"},
		{name: "fail/time-edited", events: edit(chain, 1, func(e *AuditEvent) { e.Time = e.Time.Add(time.Second) }), wantSeq: 2, wantMsg: "hash"},
		{name: "fail/rehashed-after-edit", events: edit(chain, 2, func(e *AuditEvent) { e.Actor = "mallory"; e.Hash = AuditHash(e) }), wantSeq: 4, wantMsg: "previous-hash"},
		{name: "fail/first-prev-not-zero", events: edit(chain, 0, func(e *AuditEvent) { e.PrevHash = strings.Repeat("1", 64); e.Hash = AuditHash(e) }), wantSeq: 1, wantMsg: "previous-hash"},
		{name: "fail/reordered", events: []*AuditEvent{chain[0], chain[2], chain[1]}, wantSeq: 2, wantMsg: "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyAuditChain(tc.events)
			if tc.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *AuditChainError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want an *AuditChainError", err)
			}
			if ce.Seq != tc.wantSeq || !strings.Contains(err.Error(), fmt.Sprintf("seq %d", tc.wantSeq)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %q (seq %d), want seq %d and %q", err, ce.Seq, tc.wantSeq, tc.wantMsg)
			}
		})
	}
}

func TestVerifyAuditSegment(t *testing.T) {
	chain := auditChain(t, 6)
	cases := []struct {
		name    string
		prev    *AuditEvent
		events  []*AuditEvent
		wantErr bool
	}{
		{name: "ok/second-page", prev: chain[2], events: chain[3:]},
		{name: "ok/nothing-new", prev: chain[5], events: nil},
		{name: "fail/page-skips-one", prev: chain[1], events: chain[3:], wantErr: true},
		{name: "fail/wrong-anchor", prev: chain[3], events: chain[3:], wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := VerifyAuditSegment(tc.prev, tc.events); (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestAuditHashCanonical(t *testing.T) {
	base := AuditEvent{Seq: 7, Time: testNow, Type: "login.ok", Actor: "alice", Fields: map[string]string{"a": "1", "b": "2"}, PrevHash: AuditZeroHash}
	h := AuditHash(&base)
	if len(h) != 64 || !isLowerHexSHA256(h) {
		t.Fatalf("hash %q is not 64 hex digits", h)
	}
	with := func(fn func(e *AuditEvent)) *AuditEvent {
		e := base
		e.Fields = map[string]string{"a": "1", "b": "2"}
		fn(&e)
		return &e
	}
	cases := []struct {
		name string
		e    *AuditEvent
		same bool
	}{
		{name: "ok/same-instant-other-zone", e: with(func(e *AuditEvent) { e.Time = e.Time.In(time.FixedZone("x", 3600)) }), same: true},
		{name: "ok/hash-field-not-covered", e: with(func(e *AuditEvent) { e.Hash = "whatever" }), same: true},
		{name: "ok/map-built-in-other-order", e: with(func(e *AuditEvent) { e.Fields = map[string]string{"b": "2", "a": "1"} }), same: true},
		{name: "fail/seq", e: with(func(e *AuditEvent) { e.Seq = 8 }), same: false},
		{name: "fail/nanosecond", e: with(func(e *AuditEvent) { e.Time = e.Time.Add(time.Nanosecond) }), same: false},
		{name: "fail/type", e: with(func(e *AuditEvent) { e.Type = "login.fail" }), same: false},
		{name: "fail/actor", e: with(func(e *AuditEvent) { e.Actor = "bob" }), same: false},
		{name: "fail/prev", e: with(func(e *AuditEvent) { e.PrevHash = strings.Repeat("f", 64) }), same: false},
		{name: "fail/field-value", e: with(func(e *AuditEvent) { e.Fields["a"] = "2" }), same: false},
		{name: "fail/field-moved-between-keys", e: with(func(e *AuditEvent) { e.Fields = map[string]string{"a": "12", "b": ""} }), same: false},
		{name: "fail/text-moved-type-to-actor", e: with(func(e *AuditEvent) { e.Type, e.Actor = "login.oka", "lice" }), same: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := AuditHash(tc.e) == h; got != tc.same {
				t.Fatalf("same hash = %v, want %v", got, tc.same)
			}
		})
	}
	// No fields and empty fields are one event: a JSON export may drop either.
	a, b := base, base
	a.Fields, b.Fields = nil, map[string]string{}
	if AuditHash(&a) != AuditHash(&b) {
		t.Fatal("nil and empty fields hash differently")
	}
}

func TestAuditSince(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &AuditAppend{Events: auditInputs(10, "x")})
	cases := []struct {
		name      string
		after     uint64
		limit     int
		wantFirst uint64
		wantN     int
	}{
		{name: "ok/from-start", after: 0, limit: 4, wantFirst: 1, wantN: 4},
		{name: "ok/middle-page", after: 4, limit: 4, wantFirst: 5, wantN: 4},
		{name: "ok/short-last-page", after: 8, limit: 4, wantFirst: 9, wantN: 2},
		{name: "ok/no-limit", after: 3, limit: 0, wantFirst: 4, wantN: 7},
		{name: "ok/past-the-end", after: 10, limit: 4, wantN: 0},
		{name: "ok/max-seq", after: ^uint64(0), limit: 4, wantN: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx, got, err := f.State().AuditSince(nil, tc.after, tc.limit)
			if err != nil || idx == 0 {
				t.Fatalf("idx %d err %v", idx, err)
			}
			if len(got) != tc.wantN || (tc.wantN > 0 && got[0].Seq != tc.wantFirst) {
				t.Fatalf("got %d events from %v, want %d from %d", len(got), got, tc.wantN, tc.wantFirst)
			}
		})
	}
	ws := memdb.NewWatchSet()
	if _, _, err := f.State().AuditSince(ws, 10, 0); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, &AuditAppend{Events: auditInputs(1, "x")})
	if !fired(ws) {
		t.Fatal("an append did not wake an AuditSince watcher")
	}
}

func BenchmarkAuditAppend100(b *testing.B) {
	f, err := NewFSM(nil)
	if err != nil {
		b.Fatal(err)
	}
	buf := mustEncode(b, &AuditAppend{Events: auditInputs(100, "session.open")})
	b.ReportAllocs()
	var index uint64
	for b.Loop() {
		index++
		if res := f.ApplyCommand(index, buf); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(index*100), "ns/event")
}
