package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func TestTokenCreate(t *testing.T) {
	h := invTokenHash("secret")
	cases := []struct {
		name    string
		token   Token
		noNow   bool
		wantErr error
	}{
		{name: "ok/enroll-single-use", token: Token{Hash: h, Kind: TokenEnroll, Project: "web", UsesLeft: 1, Description: "batch 1", CreatedBy: "alice"}},
		{name: "ok/enroll-unlimited-expiring", token: Token{Hash: h, Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses, ExpiresAt: testNow.Add(24 * time.Hour)}},
		{name: "ok/join", token: Token{Hash: h, Kind: TokenJoin, UsesLeft: 3}},
		{name: "fail/duplicate-hash", token: Token{Hash: invTokenHash("taken"), Kind: TokenJoin, UsesLeft: 1}, wantErr: ErrConflict},
		{name: "fail/missing-project", token: Token{Hash: h, Kind: TokenEnroll, Project: "db", UsesLeft: 1}, wantErr: ErrNotFound},
		{name: "fail/enroll-without-project", token: Token{Hash: h, Kind: TokenEnroll, UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/join-with-project", token: Token{Hash: h, Kind: TokenJoin, Project: "web", UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/bad-kind", token: Token{Hash: h, Kind: "admin", UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/uses-zero", token: Token{Hash: h, Kind: TokenJoin}, wantErr: ErrInvalid},
		{name: "fail/uses-minus-two", token: Token{Hash: h, Kind: TokenJoin, UsesLeft: -2}, wantErr: ErrInvalid},
		{name: "fail/hash-uppercase", token: Token{Hash: strings.ToUpper(h), Kind: TokenJoin, UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/hash-short", token: Token{Hash: h[:63], Kind: TokenJoin, UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/hash-not-hex", token: Token{Hash: strings.Repeat("g", 64), Kind: TokenJoin, UsesLeft: 1}, wantErr: ErrInvalid},
		{name: "fail/already-expired", token: Token{Hash: h, Kind: TokenJoin, UsesLeft: 1, ExpiresAt: testNow}, wantErr: ErrInvalid},
		{name: "fail/no-time", token: Token{Hash: h, Kind: TokenJoin, UsesLeft: 1}, noNow: true, wantErr: ErrInvalid},
		{name: "fail/description-control", token: Token{Hash: h, Kind: TokenJoin, UsesLeft: 1, Description: "a\x07"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("taken"), Kind: TokenEnroll, Project: "web", UsesLeft: 1}, Now: testNow})
			now := testNow
			if tc.noNow {
				now = time.Time{}
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &TokenCreate{Token: tc.token, Now: now})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused write changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, tk, _ := f.State().TokenByHash(nil, tc.token.Hash)
			if tk == nil || !tk.CreatedAt.Equal(testNow) || tk.CreateIndex != res.Index || tk.UsesLeft != tc.token.UsesLeft {
				t.Fatalf("stored = %+v", tk)
			}
		})
	}
}

func TestTokenUse(t *testing.T) {
	h := invTokenHash("secret")
	expires := testNow.Add(time.Hour)
	cases := []struct {
		name      string
		token     Token
		kind      TokenKind
		now       time.Time
		wantErr   error
		wantLeft  int
		wantGone  bool
		wantWrite bool
	}{
		{name: "ok/last-use-deletes", token: Token{Kind: TokenEnroll, Project: "web", UsesLeft: 1}, kind: TokenEnroll, now: testNow, wantLeft: 0, wantGone: true, wantWrite: true},
		{name: "ok/counted-use-decrements", token: Token{Kind: TokenJoin, UsesLeft: 3}, kind: TokenJoin, now: testNow, wantLeft: 2, wantWrite: true},
		{name: "ok/unlimited-not-written", token: Token{Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses}, kind: TokenEnroll, now: testNow, wantLeft: UnlimitedUses},
		{name: "ok/just-before-expiry", token: Token{Kind: TokenJoin, UsesLeft: 2, ExpiresAt: expires}, kind: TokenJoin, now: expires.Add(-time.Nanosecond), wantLeft: 1, wantWrite: true},
		{name: "fail/at-expiry", token: Token{Kind: TokenJoin, UsesLeft: 2, ExpiresAt: expires}, kind: TokenJoin, now: expires, wantErr: ErrExpired},
		{name: "fail/after-expiry", token: Token{Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses, ExpiresAt: expires}, kind: TokenEnroll, now: expires.Add(time.Hour), wantErr: ErrExpired},
		{name: "fail/other-kind", token: Token{Kind: TokenJoin, UsesLeft: 1}, kind: TokenEnroll, now: testNow, wantErr: ErrNotFound},
		{name: "fail/missing", kind: TokenJoin, now: testNow, wantErr: ErrNotFound},
		{name: "fail/no-time", token: Token{Kind: TokenJoin, UsesLeft: 1}, kind: TokenJoin, wantErr: ErrInvalid},
		{name: "fail/bad-kind", token: Token{Kind: TokenJoin, UsesLeft: 1}, kind: "other", now: testNow, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			if tc.token.Kind != "" {
				tc.token.Hash = h
				mustApply(t, f, &TokenCreate{Token: tc.token, Now: testNow})
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &TokenUse{Hash: h, Kind: tc.kind, Now: tc.now})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused use changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			got := res.Value.(*Token)
			if got.UsesLeft != tc.wantLeft || got.Hash != h || got.Project != tc.token.Project {
				t.Fatalf("returned %+v, want %d uses left", got, tc.wantLeft)
			}
			if wrote := f.State().LatestIndex() != before; wrote != tc.wantWrite {
				t.Fatalf("wrote = %v, want %v", wrote, tc.wantWrite)
			}
			_, stored, _ := f.State().TokenByHash(nil, h)
			if (stored == nil) != tc.wantGone {
				t.Fatalf("stored = %+v, want gone %v", stored, tc.wantGone)
			}
			if stored != nil && stored.UsesLeft != tc.wantLeft {
				t.Fatalf("stored uses %d, want %d", stored.UsesLeft, tc.wantLeft)
			}
		})
	}

	t.Run("fail/spent-token-cannot-be-reused", func(t *testing.T) {
		f := testFSM(t)
		mustApply(t, f, &TokenCreate{Token: Token{Hash: h, Kind: TokenJoin, UsesLeft: 2}, Now: testNow})
		mustApply(t, f, &TokenUse{Hash: h, Kind: TokenJoin, Now: testNow})
		mustApply(t, f, &TokenUse{Hash: h, Kind: TokenJoin, Now: testNow})
		if res := apply(t, f, &TokenUse{Hash: h, Kind: TokenJoin, Now: testNow}); !errors.Is(res.Err, ErrNotFound) {
			t.Fatalf("third use of a two-use token: err = %v", res.Err)
		}
	})

	t.Run("fail/exhausted-row", func(t *testing.T) {
		// A row with no uses left cannot be created through commands; one
		// arriving by some other path (an old snapshot) is still refused.
		f := testFSM(t)
		tx := f.State().newWriteTxn(1)
		if err := tx.Insert(tableTokens, &Token{Hash: h, Kind: TokenJoin, UsesLeft: 0}); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		if res := apply(t, f, &TokenUse{Hash: h, Kind: TokenJoin, Now: testNow}); !errors.Is(res.Err, ErrExhausted) {
			t.Fatalf("err = %v, want ErrExhausted", res.Err)
		}
	})
}

func TestTokenDeleteAndLists(t *testing.T) {
	f := testFSM(t)
	invProject(t, f, "web")
	invProject(t, f, "db")
	mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("w1"), Kind: TokenEnroll, Project: "web", UsesLeft: 1}, Now: testNow})
	mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("w2"), Kind: TokenEnroll, Project: "web", UsesLeft: 1}, Now: testNow})
	mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("d1"), Kind: TokenEnroll, Project: "db", UsesLeft: 1}, Now: testNow})
	mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("j1"), Kind: TokenJoin, UsesLeft: 1}, Now: testNow})

	cases := []struct {
		name    string
		hash    string
		wantErr error
	}{
		{name: "ok/existing", hash: invTokenHash("w1")},
		{name: "fail/already-deleted", hash: invTokenHash("w1"), wantErr: ErrNotFound},
		{name: "fail/bad-hash", hash: "secret", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if res := apply(t, f, &TokenDelete{Hash: tc.hash}); !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
		})
	}
	_, all, _ := f.State().Tokens(nil)
	_, web, _ := f.State().TokensByProject(nil, "web")
	_, none, _ := f.State().TokensByProject(nil, "")
	if len(all) != 3 || len(web) != 1 || len(none) != 0 {
		t.Fatalf("all=%d web=%d by-empty-project=%d", len(all), len(web), len(none))
	}
}

func TestTokenPrune(t *testing.T) {
	f := testFSM(t)
	invProject(t, f, "web")
	hash := func(c byte) string { return strings.Repeat(string(c), 64) }
	for _, tok := range []Token{
		{Hash: hash('a'), Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses, ExpiresAt: testNow.Add(time.Hour)},     // expired long ago
		{Hash: hash('b'), Kind: TokenJoin, UsesLeft: 1, ExpiresAt: testNow.Add(2 * time.Hour)},                               // expired at the cut
		{Hash: hash('c'), Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses, ExpiresAt: testNow.Add(3 * time.Hour)}, // expired within the grace
		{Hash: hash('d'), Kind: TokenEnroll, Project: "web", UsesLeft: UnlimitedUses},                                        // never expires
	} {
		mustApply(t, f, &TokenCreate{Token: tok, Now: testNow})
	}
	ws := memdb.NewWatchSet()
	if _, _, err := f.State().Tokens(ws); err != nil {
		t.Fatal(err)
	}
	if n := mustApply(t, f, &TokenPrune{Before: testNow.Add(2 * time.Hour)}); n != 2 {
		t.Fatalf("pruned %v, want 2", n)
	}
	if !fired(ws) {
		t.Fatal("pruning did not wake token watchers")
	}
	_, left, _ := f.State().Tokens(nil)
	if len(left) != 2 || left[0].Hash != hash('c') || left[1].Hash != hash('d') {
		t.Fatalf("left %v, want c (in its grace) and d (no expiry)", left)
	}
	ws = memdb.NewWatchSet()
	_, _, _ = f.State().Tokens(ws)
	if n := mustApply(t, f, &TokenPrune{Before: testNow.Add(2 * time.Hour)}); n != 0 || fired(ws) {
		t.Fatalf("a prune with nothing to delete: %v, woke watchers %v", n, fired(ws))
	}
	if res := apply(t, f, &TokenPrune{}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("prune without a time: %v", res.Err)
	}
}
