package raftstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func testServiceToken(id, name, secret string) ServiceToken {
	return ServiceToken{ID: id, Name: name, Hash: secretHash(secret), Role: ServiceRoleAdmin, CreatedBy: "alice", ExpiresAt: testNow.AddDate(0, 3, 0)}
}

func TestServiceTokenCreate(t *testing.T) {
	cases := []struct {
		name    string
		token   ServiceToken
		wantErr error
	}{
		{name: "ok/create", token: testServiceToken("t2", "terraform", "s2")},
		{name: "ok/never-expires", token: modified(testServiceToken("t2", "ci", "s2"), func(tk *ServiceToken) { tk.ExpiresAt = time.Time{} })},
		{name: "fail/duplicate-id", token: testServiceToken("t1", "other", "s2"), wantErr: ErrConflict},
		{name: "fail/duplicate-name", token: testServiceToken("t2", "ansible", "s2"), wantErr: ErrConflict},
		{name: "fail/duplicate-secret", token: testServiceToken("t2", "other", "s1"), wantErr: ErrConflict},
		{name: "fail/upper-case-hash", token: modified(testServiceToken("t2", "x", "s2"), func(tk *ServiceToken) { tk.Hash = strings.ToUpper(tk.Hash) }), wantErr: ErrInvalid},
		{name: "fail/short-hash", token: modified(testServiceToken("t2", "x", "s2"), func(tk *ServiceToken) { tk.Hash = tk.Hash[:40] }), wantErr: ErrInvalid},
		{name: "fail/plain-secret-as-hash", token: modified(testServiceToken("t2", "x", "s2"), func(tk *ServiceToken) { tk.Hash = "s2" }), wantErr: ErrInvalid},
		{name: "ok/provisioning-scope", token: modified(testServiceToken("t2", "okta", "s2"), func(tk *ServiceToken) { tk.Role = ServiceRoleProvisioning })},
		{name: "fail/unknown-role", token: modified(testServiceToken("t2", "x", "s2"), func(tk *ServiceToken) { tk.Role = "reader" }), wantErr: ErrInvalid},
		{name: "fail/expires-at-now", token: modified(testServiceToken("t2", "x", "s2"), func(tk *ServiceToken) { tk.ExpiresAt = testNow }), wantErr: ErrInvalid},
		{name: "fail/no-name", token: testServiceToken("t2", "", "s2"), wantErr: ErrInvalid},
		{name: "fail/no-id", token: testServiceToken("", "x", "s2"), wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &ServiceTokenCreate{Token: testServiceToken("t1", "ansible", "s1"), Now: testNow})
			before := f.State().LatestIndex()
			res := apply(t, f, &ServiceTokenCreate{Token: tc.token, Now: testNow})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if strings.Contains(res.Err.Error(), tc.token.Hash) && tc.token.Hash != "" {
					t.Fatal("the error echoes the token hash")
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused write moved the index")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, got, err := f.State().ServiceTokenByHash(nil, tc.token.Hash)
			if err != nil || got == nil {
				t.Fatalf("token not found by hash: %v", err)
			}
			if got.ID != tc.token.ID || !got.CreatedAt.Equal(testNow) || !got.ExpiresAt.Equal(tc.token.ExpiresAt) || got.CreateIndex != res.Index {
				t.Fatalf("stored %+v", got)
			}
			if _, byName, _ := f.State().ServiceTokenByName(nil, tc.token.Name); byName == nil || byName.ID != tc.token.ID {
				t.Fatalf("token not found by name: %+v", byName)
			}
		})
	}
}

func TestServiceTokenDelete(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		wantErr error
	}{
		{name: "ok/delete", id: "t1"},
		{name: "fail/unknown", id: "zz", wantErr: ErrNotFound},
		{name: "fail/empty-id", id: "", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &ServiceTokenCreate{Token: testServiceToken("t1", "ansible", "s1"), Now: testNow})
			mustApply(t, f, &ServiceTokenCreate{Token: testServiceToken("t2", "terraform", "s2"), Now: testNow})
			res := apply(t, f, &ServiceTokenDelete{ID: tc.id})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if _, tk, _ := f.State().ServiceTokenByHash(nil, secretHash("s1")); tk != nil {
				t.Fatal("deleted token still found by hash")
			}
			if _, all, _ := f.State().ServiceTokens(nil); len(all) != 1 || all[0].ID != "t2" {
				t.Fatalf("tokens left: %v", all)
			}
			// A deleted token's name and secret hash may be used again.
			mustApply(t, f, &ServiceTokenCreate{Token: testServiceToken("t3", "ansible", "s1"), Now: testNow})
		})
	}
}

// TestServiceTokenTouch: a touch moves LastUsedAt forward only, changes
// nothing else, and is a no-op (no index bump) when older or for a token
// revoked meanwhile.
func TestServiceTokenTouch(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &ServiceTokenCreate{Token: testServiceToken("t1", "ci", "s1"), Now: testNow})
	later := testNow.Add(time.Hour)
	mustApply(t, f, &ServiceTokenTouch{ID: "t1", At: later})
	_, tk, err := f.State().ServiceTokenByName(nil, "ci")
	if err != nil || tk == nil {
		t.Fatal(tk, err)
	}
	if !tk.LastUsedAt.Equal(later) || tk.Hash != secretHash("s1") || tk.Role != ServiceRoleAdmin {
		t.Fatalf("after touch: %+v", tk)
	}
	for _, tc := range []struct {
		name string
		cmd  *ServiceTokenTouch
	}{
		{"ok/older-is-no-op", &ServiceTokenTouch{ID: "t1", At: testNow}},
		{"ok/revoked-is-no-op", &ServiceTokenTouch{ID: "gone", At: later.Add(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.State().MaxIndex(tableServiceTokens)
			mustApply(t, f, tc.cmd)
			if got := f.State().MaxIndex(tableServiceTokens); got != before {
				t.Fatalf("table index moved %d -> %d", before, got)
			}
			_, tk, _ := f.State().ServiceTokenByName(nil, "ci")
			if !tk.LastUsedAt.Equal(later) {
				t.Fatalf("LastUsedAt = %v, want %v", tk.LastUsedAt, later)
			}
		})
	}
	if res := apply(t, f, &ServiceTokenTouch{ID: "t1"}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("touch without a time: %v", res.Err)
	}
}
