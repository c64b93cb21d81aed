package raftstore

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// testAuditKey signs checkpoints in tests (fixed, so runs are alike).
var testAuditKey = ed25519.NewKeyFromSeed([]byte(strings.Repeat("k", ed25519.SeedSize)))

func testAuditPub() ed25519.PublicKey { return testAuditKey.Public().(ed25519.PublicKey) }

// testPrune is the AuditPrune a leader would make to prune up to seq.
func testPrune(t *testing.T, s *State, seq uint64) *AuditPrune {
	t.Helper()
	_, evs, err := s.AuditSince(nil, seq-1, 1)
	if err != nil || len(evs) != 1 || evs[0].Seq != seq {
		t.Fatalf("event %d: %v %v", seq, evs, err)
	}
	cp := AuditCheckpoint{FirstSeq: 1, LastSeq: seq, Count: seq, Hash: evs[0].Hash, LastTime: evs[0].Time, Created: testNow}
	SignAuditCheckpoint(&cp, testAuditKey)
	return &AuditPrune{Checkpoint: cp, Node: "node-1", Now: testNow}
}

// appendEvents appends n events in batches of MaxAuditBatch.
func appendEvents(t testing.TB, f *FSM, n int) {
	t.Helper()
	for n > 0 {
		b := min(n, MaxAuditBatch)
		res := f.ApplyCommand(f.State().LatestIndex()+1, mustEncode(t, &AuditAppend{Events: auditInputs(b, "login.accept")}))
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		n -= b
	}
}

// tamper changes the stored log directly, as someone with the data
// directory might, bypassing raft.
func tamper(t *testing.T, s *State, fn func(events []*AuditEvent) (del []*AuditEvent, put []*AuditEvent)) {
	t.Helper()
	_, evs, err := s.Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	del, put := fn(evs)
	tx := s.db.Txn(true)
	for _, e := range del {
		if err := tx.Delete(tableAudit, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range put {
		if err := tx.Insert(tableAudit, e); err != nil {
			t.Fatal(err)
		}
	}
	tx.Commit()
}

func clone(e *AuditEvent) *AuditEvent {
	c := *e
	c.Fields = map[string]string{}
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	return &c
}

// audit verify: an intact log of 100,000 events passes, pruned or not;
// an edited event, a removed one, a reordered pair and a forged checkpoint
// each fail, at the event where the log stops being what was written (on a
// log of 20,000, to keep the test fast).
func TestVerifyAudit(t *testing.T) {
	const n, small = 100000, 20000
	tests := []struct {
		name    string
		prune   uint64 // prune up to this seq first (0: none)
		tamper  func(t *testing.T, s *State)
		wantAt  uint64 // 0: the log verifies
		wantErr string
	}{
		{name: "ok/intact-100000"},
		{name: "ok/pruned-from-checkpoint", prune: 60000},
		{name: "fail/edited-event", tamper: func(t *testing.T, s *State) {
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) {
				e := clone(evs[11999])
				e.Actor = "mallory"
				return nil, []*AuditEvent{e}
			})
		}, wantAt: 12000, wantErr: "hash does not match"},
		{name: "fail/edited-event-rehashed", tamper: func(t *testing.T, s *State) {
			// Rehashing the edited event does not help: the next one's
			// previous-hash no longer matches.
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) {
				e := clone(evs[11999])
				e.Fields["server"] = "db-1"
				e.Hash = AuditHash(e)
				return nil, []*AuditEvent{e}
			})
		}, wantAt: 12001, wantErr: "previous-hash"},
		{name: "fail/removed-event", tamper: func(t *testing.T, s *State) {
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) { return []*AuditEvent{evs[4999]}, nil })
		}, wantAt: 5000, wantErr: "missing"},
		{name: "fail/removed-first-event", tamper: func(t *testing.T, s *State) {
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) { return []*AuditEvent{evs[0]}, nil })
		}, wantAt: 1, wantErr: "missing"},
		{name: "fail/reordered-pair", tamper: func(t *testing.T, s *State) {
			// Swap the contents of events 7000 and 7001, each keeping its seq.
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) {
				a, b := clone(evs[6999]), clone(evs[7000])
				a.Seq, b.Seq = b.Seq, a.Seq
				return nil, []*AuditEvent{a, b}
			})
		}, wantAt: 7000, wantErr: "previous-hash"},
		{name: "fail/removed-after-checkpoint", prune: 15000, tamper: func(t *testing.T, s *State) {
			tamper(t, s, func(evs []*AuditEvent) ([]*AuditEvent, []*AuditEvent) { return []*AuditEvent{evs[0]}, nil })
		}, wantAt: 15001, wantErr: "missing"},
		{name: "fail/forged-checkpoint-range", prune: 15000, tamper: func(t *testing.T, s *State) {
			// Claim fewer events were pruned, to hide that some are gone.
			forgeCheckpoint(t, s, func(cp *AuditCheckpoint) { cp.LastSeq, cp.Count = 10000, 10000 })
		}, wantAt: 10000, wantErr: "signature does not verify"},
		{name: "fail/forged-checkpoint-own-key", prune: 15000, tamper: func(t *testing.T, s *State) {
			// A checkpoint signed properly, by a key that is not the cluster's.
			forgeCheckpoint(t, s, func(cp *AuditCheckpoint) {
				SignAuditCheckpoint(cp, ed25519.NewKeyFromSeed([]byte(strings.Repeat("m", ed25519.SeedSize))))
			})
		}, wantAt: 15000, wantErr: "not this cluster's audit key"},
		{name: "fail/forged-checkpoint-hash", prune: 15000, tamper: func(t *testing.T, s *State) {
			// Re-signed with the right key (a thief of the KEK could), but
			// for another history: the first event kept does not follow it.
			forgeCheckpoint(t, s, func(cp *AuditCheckpoint) {
				cp.Hash = strings.Repeat("0", 64)
				SignAuditCheckpoint(cp, testAuditKey)
			})
		}, wantAt: 15001, wantErr: "previous-hash"},
		{name: "fail/checkpoint-removed", prune: 15000, tamper: func(t *testing.T, s *State) {
			tx := s.db.Txn(true)
			if _, err := tx.DeleteAll(tableAuditState, "id"); err != nil {
				t.Fatal(err)
			}
			tx.Commit()
		}, wantAt: 1, wantErr: "missing"},
	}
	// One log of each size, copied per case through a snapshot.
	streams := map[int][]byte{}
	for _, size := range []int{n, small} {
		base := testFSM(t)
		appendEvents(t, base, size)
		streams[size] = persist(t, base)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size := n
			if tc.wantAt != 0 {
				size = small
			}
			f := testFSM(t)
			if err := f.Restore(io.NopCloser(bytes.NewReader(streams[size]))); err != nil {
				t.Fatal(err)
			}
			st := f.State()
			if tc.prune > 0 {
				mustApply(t, f, testPrune(t, st, tc.prune))
			}
			if tc.tamper != nil {
				tc.tamper(t, st)
			}
			start := time.Now()
			r, err := st.VerifyAudit(testAuditPub(), 1000)
			if tc.wantAt == 0 {
				if err != nil {
					t.Fatalf("intact log: %v", err)
				}
				want, last := n+1-int(tc.prune), uint64(n+1) // the prune's own event
				if tc.prune == 0 {
					want, last = n, n
				}
				if r.Events != want || r.LastSeq != last {
					t.Fatalf("verified %d events up to %d, want %d", r.Events, r.LastSeq, want)
				}
				if tc.prune > 0 && (r.Pruned == nil || r.Pruned.LastSeq != tc.prune || r.FirstSeq != tc.prune+1) {
					t.Fatalf("pruned range not reported: %+v", r)
				}
				t.Logf("verified %d events in %s", r.Events, time.Since(start).Round(time.Millisecond))
				return
			}
			var chain *AuditChainError
			if !errors.As(err, &chain) || chain.Seq != tc.wantAt || !strings.Contains(chain.Problem, tc.wantErr) {
				t.Fatalf("err = %v, want a break at %d (%s)", err, tc.wantAt, tc.wantErr)
			}
		})
	}
}

func forgeCheckpoint(t *testing.T, s *State, fn func(cp *AuditCheckpoint)) {
	t.Helper()
	_, st, err := s.AuditStateOf(nil)
	if err != nil || st.Checkpoint == nil {
		t.Fatal("no checkpoint", err)
	}
	next := *st
	cp := *st.Checkpoint
	fn(&cp)
	next.Checkpoint = &cp
	tx := s.db.Txn(true)
	if err := tx.Insert(tableAuditState, &next); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
}

// A prune removes exactly the checkpoint's range and writes its own event
// after the kept ones; a stale, mismatched or total prune is refused.
func TestAuditPrune(t *testing.T) {
	f := testFSM(t)
	appendEvents(t, f, 10)
	st := f.State()
	good := testPrune(t, st, 4)

	bad := *good
	bad.Checkpoint.Hash = strings.Repeat("ab", 32)
	SignAuditCheckpoint(&bad.Checkpoint, testAuditKey)
	if res := apply(t, f, &bad); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("mismatched checkpoint: %v", res.Err)
	}
	if res := apply(t, f, testPrune(t, st, 10)); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("prune of the newest event: %v", res.Err)
	}
	mustApply(t, f, good)
	_, evs, _ := st.Audit(nil)
	if len(evs) != 7 || evs[0].Seq != 5 || evs[6].Type != EventAuditPrune || evs[6].Fields["first_seq"] != "1" ||
		evs[6].Fields["last_seq"] != "4" || evs[6].Fields["count"] != "4" || evs[6].Fields["key"] != AuditKeyFingerprint(testAuditPub()) {
		t.Fatalf("after prune: %d events, first %d, last %+v", len(evs), evs[0].Seq, evs[len(evs)-1])
	}
	if res := apply(t, f, good); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("the same prune again: %v", res.Err)
	}
	// A second prune moves the checkpoint on and counts only its own range.
	mustApply(t, f, testPrune(t, st, 8))
	_, evs, _ = st.Audit(nil)
	if last := evs[len(evs)-1]; evs[0].Seq != 9 || last.Fields["first_seq"] != "5" || last.Fields["count"] != "4" {
		t.Fatalf("second prune: first %d, event %+v", evs[0].Seq, last)
	}
	if _, err := st.VerifyAudit(testAuditPub(), 3); err != nil {
		t.Fatal(err)
	}
}

// A retention change is recorded once, with its audit event; the same one
// again writes nothing.
func TestAuditRetentionSet(t *testing.T) {
	f := testFSM(t)
	set := &AuditRetentionSet{Retention: AuditRetention{MaxAge: 90 * 24 * time.Hour, MaxEvents: 1e6}, Node: "n1", Now: testNow}
	if changed := mustApply(t, f, set); changed != true {
		t.Fatalf("first set: %v", changed)
	}
	if changed := mustApply(t, f, set); changed != false {
		t.Fatalf("same again: %v", changed)
	}
	_, evs, _ := f.State().Audit(nil)
	if len(evs) != 1 || evs[0].Type != EventAuditRetentionUpdate || evs[0].Fields["max_age"] != "2160h0m0s" ||
		evs[0].Fields["max_events"] != "1000000" || evs[0].Fields["old_max_events"] != "0" {
		t.Fatalf("events %+v", evs)
	}
	if res := apply(t, f, &AuditRetentionSet{Retention: AuditRetention{MaxEvents: -1}, Now: testNow}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("negative: %v", res.Err)
	}
}

// The state machine refuses a checkpoint the cluster's audit key did not
// sign: the key ClusterInit recorded, else the kept checkpoint's key; a
// checkpoint whose signature does not verify is refused too, and nothing is
// pruned.
func TestAuditPruneKey(t *testing.T) {
	other := ed25519.NewKeyFromSeed([]byte(strings.Repeat("o", ed25519.SeedSize)))
	signedBy := func(p *AuditPrune, key ed25519.PrivateKey) *AuditPrune {
		c := *p
		SignAuditCheckpoint(&c.Checkpoint, key)
		return &c
	}
	tests := []struct {
		name string
		// recorded: the key ClusterInit records (nil: an older cluster).
		recorded ed25519.PrivateKey
		// first, when set, prunes to 2 first (with that key).
		first ed25519.PrivateKey
		sign  func(t *testing.T, s *State) *AuditPrune
		ok    bool
	}{
		{"ok/recorded-key", testAuditKey, nil, func(t *testing.T, s *State) *AuditPrune { return testPrune(t, s, 4) }, true},
		{"fail/other-key-than-recorded", testAuditKey, nil, func(t *testing.T, s *State) *AuditPrune { return signedBy(testPrune(t, s, 4), other) }, false},
		{"fail/forged-signature", testAuditKey, nil, func(t *testing.T, s *State) *AuditPrune {
			p := testPrune(t, s, 4)
			p.Checkpoint.Signature = base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
			return p
		}, false},
		{"fail/edited-after-signing", testAuditKey, nil, func(t *testing.T, s *State) *AuditPrune {
			p := testPrune(t, s, 4)
			p.Checkpoint.Created = p.Checkpoint.Created.Add(time.Hour)
			return p
		}, false},
		{"ok/old-cluster-first-prune", nil, nil, func(t *testing.T, s *State) *AuditPrune { return testPrune(t, s, 4) }, true},
		{"fail/old-cluster-forged-first-prune", nil, nil, func(t *testing.T, s *State) *AuditPrune {
			p := testPrune(t, s, 4)
			p.Checkpoint.Signature = base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
			return p
		}, false},
		{"fail/old-cluster-key-changes", nil, testAuditKey, func(t *testing.T, s *State) *AuditPrune { return signedBy(testPrune(t, s, 4), other) }, false},
		{"ok/old-cluster-same-key", nil, testAuditKey, func(t *testing.T, s *State) *AuditPrune { return testPrune(t, s, 4) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			init := &ClusterInit{ClusterID: "c", Now: testNow, UIDStart: DefaultUIDStart, UIDEnd: DefaultUIDEnd, GIDStart: DefaultGIDStart, GIDEnd: DefaultGIDEnd,
				TLSCACert: testCertPEM(t, 9), TLSCAKeySealed: []byte{1}}
			if tc.recorded != nil {
				init.AuditKey = base64.StdEncoding.EncodeToString(tc.recorded.Public().(ed25519.PublicKey))
			}
			mustApply(t, f, init)
			appendEvents(t, f, 10)
			st := f.State()
			if tc.first != nil {
				mustApply(t, f, signedBy(testPrune(t, st, 2), tc.first))
			}
			first, _ := st.AuditFirst()
			res := apply(t, f, tc.sign(t, st))
			after, _ := st.AuditFirst()
			if tc.ok {
				if res.Err != nil || after.Seq != 5 {
					t.Fatalf("refused: %v (first kept %d)", res.Err, after.Seq)
				}
				return
			}
			if !errors.Is(res.Err, ErrInvalid) || after.Seq != first.Seq {
				t.Fatalf("accepted or wrong error: %v (first kept %d, was %d)", res.Err, after.Seq, first.Seq)
			}
		})
	}
}
