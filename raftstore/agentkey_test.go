package raftstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

// keyHash is a well-formed agent key hash made from seed.
func keyHash(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// agentKeyFSM is an FSM holding project web and server s1 enrolled with
// agent key "k1".
func agentKeyFSM(t *testing.T) *FSM {
	t.Helper()
	f := testFSM(t)
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: "web"}, Now: testNow})
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", AgentKeyHash: keyHash("k1")},
		SetAgentKey: true, Now: testNow})
	return f
}

func agentKeys(t *testing.T, f *FSM) (current, prev string, since time.Time) {
	t.Helper()
	_, s, err := f.State().ServerByID(nil, "s1")
	if err != nil || s == nil {
		t.Fatalf("server s1: %v, %v", s, err)
	}
	return s.AgentKeyHash, s.PrevAgentKeyHash, s.AgentKeySince
}

func TestHashAgentKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := HashAgentKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	sum := sha256.Sum256(der)
	if got != hex.EncodeToString(sum[:]) {
		t.Fatalf("HashAgentKey = %s, want the hex SHA-256 of the PKIX DER", got)
	}
	if err := validAgentKeyHash("h", got); err != nil {
		t.Fatalf("its own hash is not valid: %v", err)
	}
	if _, err := HashAgentKey("not a key"); err == nil {
		t.Fatal("HashAgentKey accepted a string")
	}
}

func TestServerAgentKeyRoundTrip(t *testing.T) {
	cmd := &ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: testNow}
	if newCmd, ok := commandTypes[ServerAgentKeyType]; !ok || newCmd().Type() != ServerAgentKeyType {
		t.Fatalf("type %d is not registered to ServerAgentKey", ServerAgentKeyType)
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

func TestServerAgentKeyValidate(t *testing.T) {
	ok := ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: testNow}
	cases := []struct {
		name string
		edit func(c *ServerAgentKey)
	}{
		{"fail/no-server", func(c *ServerAgentKey) { c.ID = "" }},
		{"fail/no-key", func(c *ServerAgentKey) { c.KeyHash = "" }},
		{"fail/short-key", func(c *ServerAgentKey) { c.KeyHash = c.KeyHash[:40] }},
		{"fail/uppercase-key", func(c *ServerAgentKey) { c.KeyHash = strings.ToUpper(c.KeyHash) }},
		{"fail/no-replaced-key", func(c *ServerAgentKey) { c.Replaces = "" }},
		{"fail/same-key", func(c *ServerAgentKey) { c.KeyHash = c.Replaces }},
		{"fail/no-time", func(c *ServerAgentKey) { c.Now = time.Time{} }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("ok/valid: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
	bad := &ServerUpsert{Server: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", AgentKeyHash: "xyz"}, SetAgentKey: true, Now: testNow}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ServerUpsert with SetAgentKey and a malformed hash: %v, want ErrInvalid", err)
	}
}

func TestServerAgentKeyApply(t *testing.T) {
	later := testNow.Add(time.Hour)
	cases := []struct {
		name string
		// before runs after enrollment with k1.
		before    []Command
		cmd       ServerAgentKey
		wantErr   error
		wantCur   string
		wantPrev  string
		wantSince time.Time
	}{
		{name: "ok/renewal", cmd: ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later},
			wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: later},
		{name: "ok/repeated-renewal-is-a-no-op",
			before:  []Command{&ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later}},
			cmd:     ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later.Add(time.Minute)},
			wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: later},
		{name: "ok/second-renewal-forgets-the-first-key",
			before:  []Command{&ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later}},
			cmd:     ServerAgentKey{ID: "s1", KeyHash: keyHash("k3"), Replaces: keyHash("k2"), Now: later.Add(time.Minute)},
			wantCur: keyHash("k3"), wantPrev: keyHash("k2"), wantSince: later.Add(time.Minute)},
		{name: "fail/renewal-with-a-replaced-key",
			before:  []Command{&ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later}},
			cmd:     ServerAgentKey{ID: "s1", KeyHash: keyHash("k3"), Replaces: keyHash("k1"), Now: later},
			wantErr: ErrConflict, wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: later},
		{name: "fail/back-to-the-retired-key",
			before:  []Command{&ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later}},
			cmd:     ServerAgentKey{ID: "s1", KeyHash: keyHash("k1"), Replaces: keyHash("k2"), Now: later},
			wantErr: ErrInvalid, wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: later},
		{name: "fail/after-re-enrollment",
			before: []Command{&ServerUpsert{Server: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", AgentKeyHash: keyHash("k9")},
				SetAgentKey: true, Now: later}},
			cmd:     ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later},
			wantErr: ErrConflict, wantCur: keyHash("k9"), wantSince: later},
		{name: "fail/server-gone", before: []Command{&ServerDelete{ID: "s1"}},
			cmd: ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: later}, wantErr: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := agentKeyFSM(t)
			for _, c := range tc.before {
				mustApply(t, f, c)
			}
			res := apply(t, f, &tc.cmd)
			if !errors.Is(res.Err, tc.wantErr) || (tc.wantErr == nil && res.Err != nil) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			if errors.Is(tc.wantErr, ErrNotFound) {
				return
			}
			cur, prev, since := agentKeys(t, f)
			if cur != tc.wantCur || prev != tc.wantPrev || !since.Equal(tc.wantSince) {
				t.Fatalf("agent key %.8s prev %.8s since %s; want %.8s prev %.8s since %s", cur, prev, since, tc.wantCur, tc.wantPrev, tc.wantSince)
			}
		})
	}
}

// TestServerAgentKeyUnrecorded: a server enrolled before agent keys were
// recorded takes the key of its agent's first renewal.
func TestServerAgentKeyUnrecorded(t *testing.T) {
	f := eventsFSM(t) // s1 upserted without an agent key
	mustApply(t, f, &ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: testNow})
	if cur, prev, _ := agentKeys(t, f); cur != keyHash("k2") || prev != keyHash("k1") {
		t.Fatalf("agent key %.8s prev %.8s, want k2 and k1", cur, prev)
	}
}

// TestServerAgentKeyQuiet: a renewal wakes neither the servers table's
// watchers nor moves the server's ModifyIndex.
func TestServerAgentKeyQuiet(t *testing.T) {
	f := agentKeyFSM(t)
	st := f.State()
	idx := st.MaxIndex(tableServers)
	_, before, _ := st.ServerByID(nil, "s1")
	ws := memdb.NewWatchSet()
	st.MaxIndexWatch(ws, tableServers)
	mustApply(t, f, &ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: testNow})
	if got := st.MaxIndex(tableServers); got != idx {
		t.Errorf("servers table index moved %d -> %d", idx, got)
	}
	if fired(ws) {
		t.Error("the servers table's index watch fired")
	}
	if _, after, _ := st.ServerByID(nil, "s1"); after.ModifyIndex != before.ModifyIndex || after.AgentKeyHash != keyHash("k2") {
		t.Errorf("after: ModifyIndex %d (was %d), key %.8s", after.ModifyIndex, before.ModifyIndex, after.AgentKeyHash)
	}
}

// TestServerUpsertAgentKey: only an enrollment (SetAgentKey) records a
// key; an admin edit keeps the recorded one, even when it carries another.
func TestServerUpsertAgentKey(t *testing.T) {
	renewed := testNow.Add(time.Hour)
	reenrolled := testNow.Add(2 * time.Hour)
	base := Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1"}
	with := func(edit func(s *Server)) Server { s := base; edit(&s); return s }
	cases := []struct {
		name      string
		cmd       ServerUpsert
		wantCur   string
		wantPrev  string
		wantSince time.Time
	}{
		{name: "ok/admin-edit-keeps-key", cmd: ServerUpsert{Server: with(func(s *Server) { s.Addr = "10.0.0.2" }), Now: reenrolled},
			wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: renewed},
		{name: "ok/stale-copy-cannot-put-back-the-old-key", cmd: ServerUpsert{Server: with(func(s *Server) {
			s.Labels = map[string]string{"env": "prod"}
			s.AgentKeyHash = keyHash("k1")
		}), Now: reenrolled},
			wantCur: keyHash("k2"), wantPrev: keyHash("k1"), wantSince: renewed},
		{name: "ok/re-enrollment-records-key-and-forgets-previous", cmd: ServerUpsert{Server: with(func(s *Server) { s.AgentKeyHash = keyHash("k9") }),
			SetAgentKey: true, Now: reenrolled},
			wantCur: keyHash("k9"), wantSince: reenrolled},
		{name: "ok/re-enrollment-with-the-current-key-forgets-previous", cmd: ServerUpsert{Server: with(func(s *Server) { s.AgentKeyHash = keyHash("k2") }),
			SetAgentKey: true, Now: reenrolled},
			wantCur: keyHash("k2"), wantSince: reenrolled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := agentKeyFSM(t)
			mustApply(t, f, &ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: renewed})
			mustApply(t, f, &tc.cmd)
			cur, prev, since := agentKeys(t, f)
			if cur != tc.wantCur || prev != tc.wantPrev || !since.Equal(tc.wantSince) {
				t.Fatalf("agent key %.8s prev %.8s since %s; want %.8s prev %.8s since %s", cur, prev, since, tc.wantCur, tc.wantPrev, tc.wantSince)
			}
		})
	}

	// A new server registered by hand has no agent key, whatever it carries.
	f := agentKeyFSM(t)
	mustApply(t, f, &ServerUpsert{Server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", AgentKeyHash: keyHash("k5")}, Now: testNow})
	if _, s2, _ := f.State().ServerByID(nil, "s2"); s2.AgentKeyHash != "" {
		t.Fatalf("a server registered by hand has agent key %.8s", s2.AgentKeyHash)
	}
	// Enrolling the same key again changes nothing: no write.
	_, s1, _ := f.State().ServerByID(nil, "s1")
	mustApply(t, f, &ServerUpsert{Server: *s1, SetAgentKey: true, Now: reenrolled})
	if _, again, _ := f.State().ServerByID(nil, "s1"); again.ModifyIndex != s1.ModifyIndex || !again.AgentKeySince.Equal(s1.AgentKeySince) {
		t.Fatalf("enrolling the same key again rewrote the server (modify index %d -> %d)", s1.ModifyIndex, again.ModifyIndex)
	}
}

// TestAgentKeySnapshotRoundTrip: the agent key survives a snapshot.
func TestAgentKeySnapshotRoundTrip(t *testing.T) {
	f := agentKeyFSM(t)
	mustApply(t, f, &ServerAgentKey{ID: "s1", KeyHash: keyHash("k2"), Replaces: keyHash("k1"), Now: testNow})
	var buf bytes.Buffer
	tx := f.State().ReadTxn()
	if err := writeSnapshot(&buf, tx, 0); err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	restored, _, err := readSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	_, s, _ := restored.ServerByID(nil, "s1")
	if s == nil || s.AgentKeyHash != keyHash("k2") || s.PrevAgentKeyHash != keyHash("k1") || !s.AgentKeySince.Equal(testNow) {
		t.Fatalf("restored server: %+v", s)
	}
}
