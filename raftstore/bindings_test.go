package raftstore

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"golang.org/x/crypto/ssh"
)

// bindingTestKey returns a deterministic ed25519 public key as an
// authorized_keys line, and its SHA256 fingerprint.
func bindingTestKey(t testing.TB, seed byte) (line, fp string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune('A'+seed%26)), ed25519.SeedSize)))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), ssh.FingerprintSHA256(pub)
}

// testBinding returns a binding of key seed to user, valid for 8h from testNow.
func testBinding(t testing.TB, seed byte, user string) Binding {
	line, fp := bindingTestKey(t, seed)
	return Binding{Fingerprint: fp, UserID: user, PublicKey: line, ClientVersion: "SSH-2.0-OpenSSH_9.6", SourceAddr: "192.0.2.7:50000", ExpiresAt: testNow.Add(8 * time.Hour)}
}

// addTestUsers creates active users with the given ids.
func addTestUsers(t *testing.T, f *FSM, ids ...string) {
	t.Helper()
	for _, id := range ids {
		mustApply(t, f, &UserUpsert{User: User{ID: id, Login: id, UnixName: id}, Now: testNow})
	}
}

func TestBindingUpsert(t *testing.T) {
	_, otherFP := bindingTestKey(t, 9)
	cases := []struct {
		name    string
		prior   []Binding
		setup   func(t *testing.T, f *FSM)
		binding Binding
		noTime  bool
		wantErr error
		// wantCreateIndex is the binding's CreateIndex, when not 0.
		wantCreateIndex uint64
	}{
		{name: "ok/new", binding: testBinding(t, 1, "alice")},
		{name: "ok/refresh-keeps-creation", prior: []Binding{testBinding(t, 1, "alice")},
			binding: modified(testBinding(t, 1, "alice"), func(b *Binding) { b.ExpiresAt = b.ExpiresAt.Add(time.Hour) }), wantCreateIndex: 3},
		{name: "ok/rebind-to-other-user", prior: []Binding{testBinding(t, 1, "alice")}, binding: testBinding(t, 1, "bob")},
		{name: "fail/unknown-user", binding: testBinding(t, 1, "nobody"), wantErr: ErrNotFound},
		{name: "fail/disabled-user", binding: testBinding(t, 1, "alice"), wantErr: ErrConflict,
			setup: func(t *testing.T, f *FSM) {
				mustApply(t, f, &UserSetStatus{ID: "alice", Status: UserDisabled, Now: testNow})
			}},
		{name: "fail/expires-at-now", binding: modified(testBinding(t, 1, "alice"), func(b *Binding) { b.ExpiresAt = testNow }), wantErr: ErrInvalid},
		{name: "fail/no-time", binding: testBinding(t, 1, "alice"), noTime: true, wantErr: ErrInvalid},
		{name: "fail/fingerprint-of-another-key", binding: modified(testBinding(t, 1, "alice"), func(b *Binding) { b.Fingerprint = otherFP }), wantErr: ErrInvalid},
		{name: "fail/md5-fingerprint", binding: modified(testBinding(t, 1, "alice"), func(b *Binding) { b.Fingerprint = "MD5:aa" }), wantErr: ErrInvalid},
		{name: "fail/garbage-key", binding: modified(testBinding(t, 1, "alice"), func(b *Binding) { b.PublicKey = "ssh-ed25519 AAAA" }), wantErr: ErrInvalid},
		{name: "fail/empty-user", binding: testBinding(t, 1, ""), wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			addTestUsers(t, f, "alice", "bob")
			for _, p := range tc.prior {
				mustApply(t, f, &BindingUpsert{Binding: p, Now: testNow})
			}
			if tc.setup != nil {
				tc.setup(t, f)
			}
			now := testNow
			if tc.noTime {
				now = time.Time{}
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &BindingUpsert{Binding: tc.binding, Now: now})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if got := f.State().LatestIndex(); got != before {
					t.Fatalf("refused write changed the state: index %d -> %d", before, got)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, b, err := f.State().BindingByFingerprint(nil, tc.binding.Fingerprint)
			if err != nil || b == nil {
				t.Fatalf("binding not stored: %v", err)
			}
			if b.UserID != tc.binding.UserID || !b.ExpiresAt.Equal(tc.binding.ExpiresAt) || b.ModifyIndex != res.Index {
				t.Fatalf("stored %+v, want user %s expiry %s modify index %d", b, tc.binding.UserID, tc.binding.ExpiresAt, res.Index)
			}
			if tc.wantCreateIndex != 0 && b.CreateIndex != tc.wantCreateIndex {
				t.Fatalf("create index %d, want %d", b.CreateIndex, tc.wantCreateIndex)
			}
			if !b.CreatedAt.Equal(testNow) {
				t.Fatalf("created at %s, want %s", b.CreatedAt, testNow)
			}
		})
	}
}

func TestBindingUpsertSameContentIsNoOp(t *testing.T) {
	f := testFSM(t)
	addTestUsers(t, f, "alice")
	b := testBinding(t, 1, "alice")
	mustApply(t, f, &BindingUpsert{Binding: b, Now: testNow})
	ws := memdb.NewWatchSet()
	if _, _, err := f.State().BindingByFingerprint(ws, b.Fingerprint); err != nil {
		t.Fatal(err)
	}
	before := f.State().LatestIndex()
	mustApply(t, f, &BindingUpsert{Binding: b, Now: testNow.Add(time.Minute)})
	if fired(ws) || f.State().LatestIndex() != before {
		t.Fatal("an identical upsert woke watchers or moved the index")
	}
	b.ExpiresAt = b.ExpiresAt.Add(time.Hour)
	mustApply(t, f, &BindingUpsert{Binding: b, Now: testNow})
	if !fired(ws) {
		t.Fatal("a new expiry did not wake the watcher")
	}
}

func TestBindingDelete(t *testing.T) {
	cases := []struct {
		name      string
		cmd       BindingDelete
		wantErr   error
		wantCount int
		// wantLeft are the key seeds still bound afterwards.
		wantLeft []byte
	}{
		{name: "ok/one-by-fingerprint", cmd: BindingDelete{Fingerprint: fpOf(t, 1)}, wantCount: 1, wantLeft: []byte{2, 3}},
		{name: "ok/one-by-fingerprint-and-owner", cmd: BindingDelete{Fingerprint: fpOf(t, 1), UserID: "alice"}, wantCount: 1, wantLeft: []byte{2, 3}},
		{name: "ok/fingerprint-of-another-user-kept", cmd: BindingDelete{Fingerprint: fpOf(t, 1), UserID: "bob"}, wantCount: 0, wantLeft: []byte{1, 2, 3}},
		{name: "ok/unknown-fingerprint", cmd: BindingDelete{Fingerprint: fpOf(t, 7)}, wantCount: 0, wantLeft: []byte{1, 2, 3}},
		{name: "ok/every-binding-of-user", cmd: BindingDelete{UserID: "alice"}, wantCount: 2, wantLeft: []byte{3}},
		{name: "ok/user-without-bindings", cmd: BindingDelete{UserID: "carol"}, wantCount: 0, wantLeft: []byte{1, 2, 3}},
		{name: "ok/all", cmd: BindingDelete{All: true}, wantCount: 3},
		{name: "fail/nothing-named", cmd: BindingDelete{}, wantErr: ErrInvalid},
		{name: "fail/all-and-user", cmd: BindingDelete{All: true, UserID: "alice"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			addTestUsers(t, f, "alice", "bob")
			mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 1, "alice"), Now: testNow})
			mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 2, "alice"), Now: testNow})
			mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 3, "bob"), Now: testNow})
			before := f.State().LatestIndex()
			cmd := tc.cmd
			res := apply(t, f, &cmd)
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if res.Value != tc.wantCount {
				t.Fatalf("deleted %v, want %d", res.Value, tc.wantCount)
			}
			if moved := f.State().LatestIndex() != before; moved != (tc.wantCount > 0) {
				t.Fatalf("index moved = %v after deleting %d", moved, tc.wantCount)
			}
			_, left, err := f.State().Bindings(nil)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, seed := range tc.wantLeft {
				want[fpOf(t, seed)] = true
			}
			if len(left) != len(want) {
				t.Fatalf("%d bindings left, want %d", len(left), len(want))
			}
			for _, b := range left {
				if !want[b.Fingerprint] {
					t.Fatalf("binding %s should be gone", b.Fingerprint)
				}
			}
		})
	}
}

func fpOf(t testing.TB, seed byte) string {
	_, fp := bindingTestKey(t, seed)
	return fp
}

func TestLiveBinding(t *testing.T) {
	f := testFSM(t)
	addTestUsers(t, f, "alice", "bob")
	b := testBinding(t, 1, "alice")
	mustApply(t, f, &BindingUpsert{Binding: b, Now: testNow})
	mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 2, "alice"), Now: testNow})
	cases := []struct {
		name string
		fp   string
		now  time.Time
		live bool
	}{
		{name: "ok/live", fp: b.Fingerprint, now: testNow.Add(time.Hour), live: true},
		{name: "ok/last-nanosecond", fp: b.Fingerprint, now: b.ExpiresAt.Add(-time.Nanosecond), live: true},
		{name: "fail/at-expiry", fp: b.Fingerprint, now: b.ExpiresAt},
		{name: "fail/after-expiry", fp: b.Fingerprint, now: b.ExpiresAt.Add(time.Hour)},
		{name: "fail/unknown-key", fp: fpOf(t, 5), now: testNow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx, got, err := f.State().LiveBinding(nil, tc.fp, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if idx == 0 {
				t.Fatal("index 0")
			}
			if (got != nil) != tc.live {
				t.Fatalf("live = %v, want %v", got != nil, tc.live)
			}
		})
	}
	_, mine, _ := f.State().BindingsByUser(nil, "alice")
	_, none, _ := f.State().BindingsByUser(nil, "bob")
	if len(mine) != 2 || len(none) != 0 {
		t.Fatalf("bindings by user: alice %d, bob %d", len(mine), len(none))
	}
}

// modified returns v as fn changes it: a table case's variant of a fixture.
func modified[T any](v T, fn func(*T)) T {
	fn(&v)
	return v
}
