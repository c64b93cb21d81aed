package raftstore

import (
	"errors"
	"testing"
)

// TestCARotationRaces: two rotation steps planned from the same read of a
// chain, applied one after the other. The second is refused and the chain
// keeps exactly one active key, and a retired key never signs again, both
// when the steps name what they were planned from (Expect, ExpectActive,
// as gateway/authority.Plan does) and when they do not (the chain rules
// alone).
func TestCARotationRaces(t *testing.T) {
	// staged: u1 active (index 1), u2 next (index 2).
	staged := []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)}
	step := func(id string, seed byte, to CAState, demote CAState, expect, active *CAVersion) CAUpsert {
		return CAUpsert{Record: testCA(t, id, CAUser, "prod", to, seed), DemoteActiveTo: demote, Expect: expect, ExpectActive: active, Now: testNow}
	}
	v := func(id string, idx uint64) *CAVersion { return &CAVersion{ID: id, ModifyIndex: idx} }
	cases := []struct {
		name string
		// promote first makes the chain promoted (u2 active, u1 next, both
		// at index 3) before the two racing steps.
		promoteFirst  bool
		first, second CAUpsert
		// wantStates is every record's state afterwards: the first step's.
		wantStates map[string]CAState
	}{
		{name: "promote-then-abort",
			first:      step("u2", 2, CAActive, CANext, v("u2", 2), v("u1", 1)),
			second:     step("u2", 2, CARetired, "", v("u2", 2), v("u1", 1)),
			wantStates: map[string]CAState{"u1": CANext, "u2": CAActive}},
		{name: "abort-then-promote",
			first:      step("u2", 2, CARetired, "", v("u2", 2), v("u1", 1)),
			second:     step("u2", 2, CAActive, CANext, v("u2", 2), v("u1", 1)),
			wantStates: map[string]CAState{"u1": CAActive, "u2": CARetired}},
		{name: "rollback-then-retire", promoteFirst: true,
			first:      step("u1", 1, CAActive, CANext, v("u1", 3), v("u2", 3)),
			second:     step("u1", 1, CARetired, "", v("u1", 3), v("u2", 3)),
			wantStates: map[string]CAState{"u1": CAActive, "u2": CANext}},
		{name: "retire-then-rollback", promoteFirst: true,
			first:      step("u1", 1, CARetired, "", v("u1", 3), v("u2", 3)),
			second:     step("u1", 1, CAActive, CANext, v("u1", 3), v("u2", 3)),
			wantStates: map[string]CAState{"u1": CARetired, "u2": CAActive}},
		{name: "begin-twice",
			first:      step("u2", 2, CANext, "", v("u2", 0), v("u1", 1)),
			second:     step("u3", 3, CANext, "", v("u3", 0), v("u1", 1)),
			wantStates: map[string]CAState{"u1": CAActive, "u2": CANext}},
	}
	for _, tc := range cases {
		for _, planned := range []bool{true, false} {
			name := "fail/" + tc.name + "/expectations"
			if !planned {
				name = "fail/" + tc.name + "/chain-rules-only"
			}
			t.Run(name, func(t *testing.T) {
				f := testFSM(t)
				prior := staged
				if tc.name == "begin-twice" {
					prior = staged[:1]
				}
				for _, r := range prior {
					mustApply(t, f, &CAUpsert{Record: r, Now: testNow})
				}
				if tc.promoteFirst {
					mustApply(t, f, &CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CANext, Now: testNow})
				}
				first, second := tc.first, tc.second
				if !planned {
					first.Expect, first.ExpectActive, second.Expect, second.ExpectActive = nil, nil, nil, nil
				}
				if res := apply(t, f, &first); res.Err != nil {
					t.Fatalf("first step: %v", res.Err)
				}
				before := f.State().LatestIndex()
				if res := apply(t, f, &second); !errors.Is(res.Err, ErrConflict) {
					t.Fatalf("second step: err = %v, want ErrConflict", res.Err)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("the refused step moved the index")
				}
				_, all, err := f.State().CAsFor(nil, CAUser, "prod")
				if err != nil {
					t.Fatal(err)
				}
				if len(all) != len(tc.wantStates) {
					t.Fatalf("%d records, want %d", len(all), len(tc.wantStates))
				}
				for _, r := range all {
					if r.State != tc.wantStates[r.ID] {
						t.Errorf("ca %s is %s, want %s", r.ID, r.State, tc.wantStates[r.ID])
					}
				}
			})
		}
	}
}

// TestCAStaleStepAfterRoundTrip: a step planned before the chain went
// through other steps and came back to the same states (promote, then
// rollback) is refused when it names the versions it read, since the
// records' states alone look as they did.
func TestCAStaleStepAfterRoundTrip(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), Now: testNow})
	mustApply(t, f, &CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CANext, 2), Now: testNow})
	_, u1, _ := f.State().CAByID(nil, "u1")
	_, u2, _ := f.State().CAByID(nil, "u2")
	stale := CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CARetired, 2), Now: testNow,
		Expect: &CAVersion{ID: "u2", ModifyIndex: u2.ModifyIndex}, ExpectActive: &CAVersion{ID: "u1", ModifyIndex: u1.ModifyIndex}}
	mustApply(t, f, &CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CANext, Now: testNow})
	mustApply(t, f, &CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), DemoteActiveTo: CANext, Now: testNow})
	if res := apply(t, f, &stale); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("stale abort: err = %v, want ErrConflict", res.Err)
	}
}
