package raftstore

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	failWrites bool
	closed     bool
	cancelled  bool
}

var _ raft.SnapshotSink = (*memSink)(nil)

func (s *memSink) ID() string { return "mem" }

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrites {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}

func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// persist snapshots f into memory and returns the stream.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v after a good persist", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// fillAllTables writes at least one row into every table.
func fillAllTables(t *testing.T, f *FSM) {
	t.Helper()
	b := testBinding(t, 1, "alice")
	s := testSession("s2", "alice")
	s.BytesIn = 7
	cmds := []Command{
		&ClusterInit{ClusterID: "c-1", Now: testNow, UIDStart: DefaultUIDStart, UIDEnd: DefaultUIDEnd, GIDStart: DefaultGIDStart, GIDEnd: DefaultGIDEnd,
			TLSCACert: testCertPEM(t, 9), TLSCAKeySealed: []byte{0, 1, 2, 255}},
		&NodeUpsert{Node: Node{ID: "node-1", RaftAddr: "127.0.0.1:8300", APIAddr: "127.0.0.1:8443", SSHAddr: "127.0.0.1:2222"}, Now: testNow},
		&UserUpsert{User: User{ID: "alice", Login: "Alice", Email: "alice@example.com", UnixName: "alice", Groups: []string{"ops", "dev"}}, EnsureGroups: true, Now: testNow},
		&UserUpsert{User: User{ID: "bob", Login: "bob", UnixName: "bob"}, Now: testNow},
		&ProjectUpsert{Project: Project{Name: "web"}, Now: testNow},
		&EntitlementUpsert{Entitlement: Entitlement{Name: "restart", Commands: []SudoCommand{
			{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}, {Path: "/usr/bin/true", Args: []string{}}, {Path: "/usr/bin/any"},
		}}, Now: testNow},
		&GrantUpsert{Grant: Grant{Project: "web", Group: "ops", Role: GrantAdmin, Sudo: []string{"restart"}}, Now: testNow},
		&ServerUpsert{Server: Server{ID: "i-1", Project: "web", Name: "web-1", AltNames: []string{"w1"}, Addr: "10.0.0.1", Labels: map[string]string{"env": "prod"}, LastSeen: testNow}, Now: testNow},
		&TokenCreate{Token: Token{Hash: invTokenHash("enroll"), Kind: TokenEnroll, Project: "web", UsesLeft: 3, ExpiresAt: testNow.Add(time.Hour)}, Now: testNow},
		&BindingUpsert{Binding: b, Now: testNow},
		&BindingUpsert{Binding: testBinding(t, 2, "bob"), Now: testNow},
		&IdPSessionPut{UserID: "bob", RefreshSealed: []byte("sealed"), ConfirmedAt: testNow},
		&SessionOpen{Session: testSession("s1", "alice")},
		&SessionOpen{Session: s},
		&SessionClose{ID: "s1", End: testNow.Add(time.Minute), BytesIn: 10, BytesOut: 20, RecordingSHA256: strings.Repeat("ab", 32), EndReason: "eof"},
		&AuditAppend{Events: append(auditInputs(3, "login.ok"), AuditEventInput{Time: testNow, Type: "cluster.init"})},
		&CAUpsert{Record: testCA(t, "u1", CAUser, "web", CAActive, 1), Now: testNow},
		&CAUpsert{Record: testCA(t, "u2", CAUser, "web", CANext, 2), Now: testNow},
		&CAUpsert{Record: testCA(t, "h1", CAHost, "", CAActive, 3), Now: testNow},
		&CAUpsert{Record: testCA(t, "t1", CATLS, "", CAActive, 9), Now: testNow},
		&ServiceTokenCreate{Token: testServiceToken("st1", "terraform", "secret"), Now: testNow},
		&ConsoleShareCreate{Share: ConsoleShare{ID: "sh1", Session: "s1", CreatedBy: "alice", ExpiresAt: testNow.Add(time.Hour)}, Now: testNow},
		&ConsoleShareRevoke{ID: "sh1", By: "alice", Now: testNow},
		&ServiceTokenCreate{Token: modified(testServiceToken("st2", "ci", "other"), func(tk *ServiceToken) { tk.ExpiresAt = time.Time{} }), Now: testNow},
		&AgentAppliedSet{ServerID: "i-1", Index: 7},
		&AuditExportCursorSet{Sink: "siem", Seq: 2, Node: "n1", At: testNow},
		&AuditSinkStateSet{Sink: "siem", Failing: true, At: testNow, Error: "connection refused"},
		&ProjectUpsert{Project: Project{Name: "jit", Settings: ProjectSettings{Requests: &RequestPolicy{Approvers: []string{"ops"}}}}, Now: testNow},
		&AccessRequestCreate{ID: "r-abcdefgh", Project: "jit", UserID: "bob", Reason: "incident 7", Duration: time.Hour, Now: testNow},
		&RecordingHolderPut{Holder: RecordingHolder{Name: "s1", Session: "s1", Node: "node-1", Path: "2027-01-02/s1.cast",
			SHA256: strings.Repeat("ab", 32), Bytes: 99, At: testNow}},
	}
	for _, c := range cmds {
		mustApply(t, f, c)
	}
	// The audit log pruned behind a checkpoint: events 3 and 4 kept, then
	// the prune's own event (5) and the retention's (6).
	mustApply(t, f, testPrune(t, f.State(), 2))
	mustApply(t, f, &AuditRetentionSet{Retention: AuditRetention{MaxEvents: 10000}, Node: "node-1", Now: testNow})
	// Guard: a table added later without rows here would go untested.
	tx := f.State().ReadTxn()
	defer tx.Abort()
	for _, name := range tableNames() {
		if raw, err := tx.First(name, "id"); err != nil || raw == nil {
			t.Errorf("table %q has no rows in the snapshot fixture (err %v): add some to fillAllTables", name, err)
		}
	}
}

// tableRows reads every row of every table, by table name.
func tableRows(t *testing.T, s *State) map[string][]any {
	t.Helper()
	tx := s.ReadTxn()
	defer tx.Abort()
	out := map[string][]any{}
	for _, name := range tableNames() {
		it, err := tx.Get(name, "id")
		if err != nil {
			t.Fatal(err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			out[name] = append(out[name], raw)
		}
	}
	return out
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := testFSM(t)
	fillAllTables(t, f)
	stream := persist(t, f)

	g := testFSM(t)
	old := g.State()
	// A watcher holds the old generation's abandon channel (as BlockingQuery
	// does): the old memdb itself never changes, so only that channel fires.
	ws := memdb.NewWatchSet()
	ws.Add(old.AbandonCh())
	if _, _, err := old.Users(ws); err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
		t.Fatal(err)
	}
	if !fired(ws) {
		t.Fatal("restore did not wake a watcher of the old state")
	}
	if g.State() == old {
		t.Fatal("restore kept the old state")
	}

	want, got := tableRows(t, f.State()), tableRows(t, g.State())
	for _, name := range tableNames() {
		t.Run("ok/"+name, func(t *testing.T) {
			if len(got[name]) != len(want[name]) {
				t.Fatalf("%d rows restored, want %d", len(got[name]), len(want[name]))
			}
			for i := range want[name] {
				if !reflect.DeepEqual(got[name][i], want[name][i]) {
					t.Fatalf("row %d differs:\n got %#v\nwant %#v", i, got[name][i], want[name][i])
				}
			}
		})
	}
	if again := persist(t, g); !bytes.Equal(again, stream) {
		t.Fatal("a restored state does not snapshot to the same bytes")
	}
	// The restored indexes work, not just the rows.
	st := g.State()
	if _, b, _ := st.LiveBinding(nil, fpOf(t, 1), testNow); b == nil || b.UserID != "alice" {
		t.Fatalf("binding by fingerprint after restore: %+v", b)
	}
	if _, ca, _ := st.ActiveCA(nil, CAHost, ""); ca == nil || ca.ID != "h1" {
		t.Fatalf("active host CA after restore: %+v", ca)
	}
	if _, tk, _ := st.ServiceTokenByHash(nil, secretHash("secret")); tk == nil || tk.ID != "st1" {
		t.Fatalf("service token by hash after restore: %+v", tk)
	}
	if _, active, _ := st.ActiveSessions(nil); len(active) != 1 || active[0].ID != "s2" {
		t.Fatalf("active sessions after restore: %v", active)
	}
	// The checkpoint came along: the log verifies from it.
	if r, err := st.VerifyAudit(testAuditKey.Public().(ed25519.PublicKey), 100); err != nil || r.Events != 4 || r.Pruned == nil || r.Pruned.LastSeq != 2 {
		t.Fatalf("audit log after restore: %+v, %v", r, err)
	}
	if st.LatestIndex() != f.State().LatestIndex() {
		t.Fatalf("latest index %d, want %d", st.LatestIndex(), f.State().LatestIndex())
	}
	// And the restored state takes new writes where the old one left off.
	if res := g.ApplyCommand(st.LatestIndex()+1, mustEncode(t, &AuditAppend{Events: auditInputs(1, "x")})); res.Err != nil || res.Value.(*AuditEvent).Seq != 7 {
		t.Fatalf("append after restore: %+v", res)
	}
}

func TestRestoreRefusals(t *testing.T) {
	src := testFSM(t)
	fillAllTables(t, src)
	good := persist(t, src)
	// Cut inside the last record: its JSON is longer than 10 bytes.
	lastRecord := bytes.LastIndexByte(good[:len(good)-1], '\n') + 1
	truncated := good[:len(good)-10]
	if len(truncated) <= lastRecord {
		t.Fatal("the last record is too short to cut inside")
	}
	cases := []struct {
		name    string
		stream  []byte
		wantErr error // nil: any error
	}{
		{name: "fail/future-format", stream: []byte(`{"rampart_snapshot":99,"tables":[]}` + "\n"), wantErr: ErrFutureVersion},
		{name: "fail/unknown-table-in-header", stream: []byte(`{"rampart_snapshot":1,"tables":["users","wormholes"]}` + "\n"), wantErr: ErrFutureVersion},
		{name: "fail/record-of-unknown-table", stream: []byte(`{"rampart_snapshot":1,"tables":[]}` + "\n" + `{"t":"wormholes","r":{}}` + "\n"), wantErr: ErrFutureVersion},
		{name: "fail/truncated-mid-record", stream: truncated},
		{name: "fail/truncated-mid-header", stream: good[:10]},
		{name: "fail/truncated-at-record-boundary", stream: withoutLastLine(good), wantErr: ErrCorruptCommand},
		{name: "fail/empty-stream", stream: nil},
		{name: "fail/not-a-snapshot", stream: []byte(`{"hello":"world"}`)},
		{name: "fail/row-of-wrong-shape", stream: []byte(`{"rampart_snapshot":1,"tables":["users"]}` + "\n" + `{"t":"users","r":{"UID":"x"}}` + "\n")},
		{name: "fail/row-missing-its-id", stream: []byte(`{"rampart_snapshot":1,"tables":["sessions"]}` + "\n" + `{"t":"sessions","r":{"UserID":"a"}}` + "\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &UserUpsert{User: User{ID: "keep", Login: "keep", UnixName: "keep"}, Now: testNow})
			mustApply(t, f, &AuditAppend{Events: auditInputs(2, "x")})
			st := f.State()
			before := persist(t, f)
			err := f.Restore(io.NopCloser(bytes.NewReader(tc.stream)))
			if err == nil {
				t.Fatal("restore accepted a bad stream")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if f.State() != st {
				t.Fatal("a refused restore replaced the state")
			}
			select {
			case <-st.AbandonCh():
				t.Fatal("a refused restore abandoned the state")
			default:
			}
			if after := persist(t, f); !bytes.Equal(after, before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

func TestPersistFailureCancelsSink(t *testing.T) {
	f := testFSM(t)
	fillAllTables(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{failWrites: true}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("persist reported success into a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}

// withoutLastLine drops the final line (the trailer) of a snapshot stream.
func withoutLastLine(b []byte) []byte {
	trimmed := bytes.TrimRight(b, "\n")
	return trimmed[:bytes.LastIndexByte(trimmed, '\n')+1]
}
