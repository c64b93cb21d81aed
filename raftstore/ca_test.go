package raftstore

import (
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/hashicorp/go-memdb"
)

// testCA returns a CA record with a real public key for its kind.
func testCA(t testing.TB, id string, kind CAKind, project string, state CAState, seed byte) CARecord {
	t.Helper()
	r := CARecord{ID: id, Kind: kind, Project: project, Algorithm: "ssh-ed25519", SealedKey: []byte("sealed:" + id), State: state}
	if kind == CATLS {
		r.Algorithm, r.PublicKey = "ed25519", testCertPEM(t, seed)
	} else {
		r.PublicKey, _ = bindingTestKey(t, seed)
	}
	return r
}

// testCertPEM returns a self-signed ed25519 CA certificate.
func testCertPEM(t testing.TB, seed byte) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune('a'+seed%26)), ed25519.SeedSize)))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(seed) + 1), Subject: pkix.Name{CommonName: "rampart cluster CA"},
		NotBefore: testNow, NotAfter: testNow.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestCAUpsert(t *testing.T) {
	cases := []struct {
		name    string
		prior   []CARecord
		cmd     CAUpsert
		wantErr error
		// wantStates is every record's state afterwards, by id.
		wantStates map[string]CAState
	}{
		{name: "ok/first-active", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			wantStates: map[string]CAState{"u1": CAActive}},
		{name: "ok/next-alongside-active", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd:        CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CANext, 2)},
			wantStates: map[string]CAState{"u1": CAActive, "u2": CANext}},
		{name: "ok/promote-demoting-old-to-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd:        CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CANext},
			wantStates: map[string]CAState{"u1": CANext, "u2": CAActive}},
		{name: "ok/promote-retiring-old", prior: []CARecord{testCA(t, "h1", CAHost, "", CAActive, 1)},
			cmd:        CAUpsert{Record: testCA(t, "h2", CAHost, "", CAActive, 2), DemoteActiveTo: CARetired},
			wantStates: map[string]CAState{"h1": CARetired, "h2": CAActive}},
		{name: "ok/demote-with-nothing-active", cmd: CAUpsert{Record: testCA(t, "t1", CATLS, "", CAActive, 1), DemoteActiveTo: CARetired},
			wantStates: map[string]CAState{"t1": CAActive}},
		{name: "ok/other-project-independent", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd:        CAUpsert{Record: testCA(t, "u2", CAUser, "staging", CAActive, 2)},
			wantStates: map[string]CAState{"u1": CAActive, "u2": CAActive}},
		{name: "ok/other-kind-independent", prior: []CARecord{testCA(t, "h1", CAHost, "", CAActive, 1)},
			cmd:        CAUpsert{Record: testCA(t, "t1", CATLS, "", CAActive, 2)},
			wantStates: map[string]CAState{"h1": CAActive, "t1": CAActive}},
		{name: "ok/reseal-key", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd:        CAUpsert{Record: modified(testCA(t, "u1", CAUser, "prod", CAActive, 1), func(r *CARecord) { r.SealedKey = []byte("resealed") })},
			wantStates: map[string]CAState{"u1": CAActive}},
		{name: "ok/retire-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd:        CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CARetired, 2)},
			wantStates: map[string]CAState{"u1": CAActive, "u2": CARetired}},
		{name: "ok/expected-versions-hold", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd:        CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CANext, Expect: &CAVersion{ID: "u2", ModifyIndex: 2}, ExpectActive: &CAVersion{ID: "u1", ModifyIndex: 1}},
			wantStates: map[string]CAState{"u1": CANext, "u2": CAActive}},
		{name: "fail/retire-active", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CARetired, 1)}, wantErr: ErrConflict},
		{name: "fail/active-to-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CANext, 1)}, wantErr: ErrConflict},
		{name: "fail/retired-to-active", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CARetired, 2)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CARetired}, wantErr: ErrConflict},
		{name: "fail/retired-to-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CARetired, 2)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CANext, 2)}, wantErr: ErrConflict},
		{name: "fail/second-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd: CAUpsert{Record: testCA(t, "u3", CAUser, "prod", CANext, 3)}, wantErr: ErrConflict},
		{name: "fail/demote-beside-next", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd: CAUpsert{Record: testCA(t, "u3", CAUser, "prod", CAActive, 3), DemoteActiveTo: CANext}, wantErr: ErrConflict},
		{name: "fail/expected-new-exists", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CARetired, 2)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CARetired, 2), Expect: &CAVersion{ID: "u2"}}, wantErr: ErrConflict},
		{name: "fail/expected-version-moved", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CARetired, 2), Expect: &CAVersion{ID: "u2", ModifyIndex: 1}}, wantErr: ErrConflict},
		{name: "fail/expected-active-moved", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1), testCA(t, "u2", CAUser, "prod", CANext, 2)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CARetired, 2), ExpectActive: &CAVersion{ID: "u1", ModifyIndex: 2}}, wantErr: ErrConflict},
		{name: "fail/expected-active-none", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CANext, 1)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), ExpectActive: &CAVersion{ID: "u1", ModifyIndex: 1}}, wantErr: ErrConflict},
		{name: "fail/expect-other-record", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), Expect: &CAVersion{ID: "u2"}}, wantErr: ErrInvalid},
		{name: "fail/expect-active-without-index", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), ExpectActive: &CAVersion{ID: "u2"}}, wantErr: ErrInvalid},
		{name: "fail/second-active", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CAActive, 1)},
			cmd: CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2)}, wantErr: ErrConflict},
		{name: "fail/kind-changes", prior: []CARecord{testCA(t, "c1", CAHost, "", CANext, 1)},
			cmd: CAUpsert{Record: testCA(t, "c1", CAUser, "prod", CANext, 1)}, wantErr: ErrConflict},
		{name: "fail/project-changes", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CANext, 1)},
			cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "staging", CANext, 1)}, wantErr: ErrConflict},
		{name: "fail/public-key-changes", prior: []CARecord{testCA(t, "u1", CAUser, "prod", CANext, 1)},
			cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CANext, 2)}, wantErr: ErrConflict},
		{name: "fail/user-ca-without-project", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "", CAActive, 1)}, wantErr: ErrInvalid},
		{name: "fail/host-ca-with-project", cmd: CAUpsert{Record: testCA(t, "h1", CAHost, "prod", CAActive, 1)}, wantErr: ErrInvalid},
		{name: "fail/unknown-kind", cmd: CAUpsert{Record: testCA(t, "x1", "ssh", "", CAActive, 1)}, wantErr: ErrInvalid},
		{name: "fail/unknown-state", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", "pending", 1)}, wantErr: ErrInvalid},
		{name: "fail/demote-to-active", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), DemoteActiveTo: CAActive}, wantErr: ErrInvalid},
		{name: "fail/demote-without-becoming-active", cmd: CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CANext, 1), DemoteActiveTo: CARetired}, wantErr: ErrInvalid},
		{name: "fail/no-sealed-key", cmd: CAUpsert{Record: modified(testCA(t, "u1", CAUser, "prod", CAActive, 1), func(r *CARecord) { r.SealedKey = nil })}, wantErr: ErrInvalid},
		{name: "fail/garbage-ssh-key", cmd: CAUpsert{Record: modified(testCA(t, "u1", CAUser, "prod", CAActive, 1), func(r *CARecord) { r.PublicKey = "ssh-ed25519 AAAA" })}, wantErr: ErrInvalid},
		{name: "fail/tls-ca-with-ssh-key", cmd: CAUpsert{Record: modified(testCA(t, "t1", CATLS, "", CAActive, 1), func(r *CARecord) { r.PublicKey, _ = bindingTestKey(t, 1) })}, wantErr: ErrInvalid},
		{name: "fail/host-ca-with-pem", cmd: CAUpsert{Record: modified(testCA(t, "h1", CAHost, "", CAActive, 1), func(r *CARecord) { r.PublicKey = testCertPEM(t, 1) })}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			for _, p := range tc.prior {
				mustApply(t, f, &CAUpsert{Record: p, Now: testNow})
			}
			before := f.State().LatestIndex()
			cmd := tc.cmd
			cmd.Now = testNow
			res := apply(t, f, &cmd)
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
			_, all, err := f.State().CAs(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != len(tc.wantStates) {
				t.Fatalf("%d records, want %d", len(all), len(tc.wantStates))
			}
			for _, r := range all {
				if r.State != tc.wantStates[r.ID] {
					t.Fatalf("ca %s is %s, want %s", r.ID, r.State, tc.wantStates[r.ID])
				}
			}
			_, got, _ := f.State().CAByID(nil, cmd.Record.ID)
			if string(got.SealedKey) != string(cmd.Record.SealedKey) || got.ModifyIndex != res.Index {
				t.Fatalf("stored %+v", got)
			}
		})
	}
}

func TestCAUpsertNoOpAndCopies(t *testing.T) {
	f := testFSM(t)
	r := testCA(t, "u1", CAUser, "prod", CAActive, 1)
	mustApply(t, f, &CAUpsert{Record: r, Now: testNow})
	_, stored, _ := f.State().CAByID(nil, "u1")
	ws := memdb.NewWatchSet()
	if _, _, err := f.State().ActiveCA(ws, CAUser, "prod"); err != nil {
		t.Fatal(err)
	}
	before := f.State().LatestIndex()
	mustApply(t, f, &CAUpsert{Record: r, Now: testNow.AddDate(0, 0, 1)})
	if fired(ws) || f.State().LatestIndex() != before {
		t.Fatal("an identical upsert woke watchers or moved the index")
	}
	mustApply(t, f, &CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CAActive, 2), DemoteActiveTo: CARetired, Now: testNow})
	if !fired(ws) {
		t.Fatal("a promotion did not wake the ActiveCA watcher")
	}
	if stored.State != CAActive {
		t.Fatal("demotion changed the row readers already held")
	}
	if _, r2, _ := f.State().CAByID(nil, "u1"); !r2.CreatedAt.Equal(testNow) {
		t.Fatalf("demoted record lost its creation time: %s", r2.CreatedAt)
	}
}

func TestCADelete(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		wantErr error
	}{
		{name: "ok/delete-next", id: "u2"},
		{name: "ok/delete-retired", id: "u3"},
		{name: "fail/delete-active", id: "u1", wantErr: ErrConflict},
		{name: "fail/unknown", id: "zz", wantErr: ErrNotFound},
		{name: "fail/empty-id", id: "", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), Now: testNow})
			mustApply(t, f, &CAUpsert{Record: testCA(t, "u2", CAUser, "prod", CANext, 2), Now: testNow})
			mustApply(t, f, &CAUpsert{Record: testCA(t, "u3", CAUser, "prod", CARetired, 3), Now: testNow})
			res := apply(t, f, &CADelete{ID: tc.id})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if _, r, _ := f.State().CAByID(nil, tc.id); r != nil {
				t.Fatal("record still there")
			}
			if _, left, _ := f.State().CAsFor(nil, CAUser, "prod"); len(left) != 2 {
				t.Fatalf("%d records left, want 2", len(left))
			}
		})
	}
}

func TestCAQueries(t *testing.T) {
	f := testFSM(t)
	for _, r := range []CARecord{
		testCA(t, "u1", CAUser, "prod", CAActive, 1),
		testCA(t, "u2", CAUser, "prod", CANext, 2),
		testCA(t, "u3", CAUser, "staging", CANext, 3),
		testCA(t, "h1", CAHost, "", CAActive, 4),
		testCA(t, "t1", CATLS, "", CAActive, 5),
	} {
		mustApply(t, f, &CAUpsert{Record: r, Now: testNow})
	}
	cases := []struct {
		name       string
		kind       CAKind
		project    string
		wantIDs    string
		wantActive string
	}{
		{name: "ok/user-prod", kind: CAUser, project: "prod", wantIDs: "u1,u2", wantActive: "u1"},
		{name: "ok/user-staging-no-active", kind: CAUser, project: "staging", wantIDs: "u3"},
		{name: "ok/host", kind: CAHost, wantIDs: "h1", wantActive: "h1"},
		{name: "ok/tls", kind: CATLS, wantIDs: "t1", wantActive: "t1"},
		{name: "ok/unknown-project", kind: CAUser, project: "dev"},
		{name: "ok/project-prefix-does-not-match", kind: CAUser, project: "pro"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, all, err := f.State().CAsFor(nil, tc.kind, tc.project)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range all {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, ","); got != tc.wantIDs {
				t.Fatalf("CAsFor = %q, want %q", got, tc.wantIDs)
			}
			_, active, err := f.State().ActiveCA(nil, tc.kind, tc.project)
			if err != nil {
				t.Fatal(err)
			}
			gotActive := ""
			if active != nil {
				gotActive = active.ID
			}
			if gotActive != tc.wantActive {
				t.Fatalf("ActiveCA = %q, want %q", gotActive, tc.wantActive)
			}
		})
	}
	if _, all, _ := f.State().CAs(nil); len(all) != 5 {
		t.Fatalf("CAs = %d records, want 5", len(all))
	}
}
