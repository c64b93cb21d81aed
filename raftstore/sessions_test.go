package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
)

func testSession(id, user string) Session {
	return Session{ID: id, UserID: user, Login: user, ServerID: "srv-web-1", Project: "prod", Node: "node-1",
		SourceAddr: "192.0.2.7:50000", Start: testNow, RecordingPath: "/var/lib/rampart/recordings/" + id + ".cast"}
}

func TestSessionOpen(t *testing.T) {
	cases := []struct {
		name    string
		session Session
		wantErr error
	}{
		{name: "ok/open", session: testSession("s1", "alice")},
		{name: "ok/status-forced-active", session: modified(testSession("s2", "alice"), func(s *Session) { s.Status = SessionClosed })},
		{name: "fail/duplicate-id", session: testSession("s0", "bob"), wantErr: ErrConflict},
		{name: "fail/no-id", session: testSession("", "alice"), wantErr: ErrInvalid},
		{name: "fail/no-user", session: testSession("s3", ""), wantErr: ErrInvalid},
		{name: "fail/no-server", session: modified(testSession("s3", "alice"), func(s *Session) { s.ServerID = "" }), wantErr: ErrInvalid},
		{name: "fail/no-node", session: modified(testSession("s3", "alice"), func(s *Session) { s.Node = "" }), wantErr: ErrInvalid},
		{name: "fail/no-start", session: modified(testSession("s3", "alice"), func(s *Session) { s.Start = time.Time{} }), wantErr: ErrInvalid},
		{name: "fail/negative-bytes", session: modified(testSession("s3", "alice"), func(s *Session) { s.BytesIn = -1 }), wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &SessionOpen{Session: testSession("s0", "alice")})
			before := f.State().LatestIndex()
			res := apply(t, f, &SessionOpen{Session: tc.session})
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
			_, s, err := f.State().SessionByID(nil, tc.session.ID)
			if err != nil || s == nil {
				t.Fatalf("session not stored: %v", err)
			}
			if s.Status != SessionActive || s.CreateIndex != res.Index || s.UserID != tc.session.UserID {
				t.Fatalf("stored %+v", s)
			}
		})
	}
}

func TestSessionClose(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	cases := []struct {
		name    string
		cmd     SessionClose
		closed  bool // close s1 once before the case
		wantErr error
		wantEnd time.Time
	}{
		{name: "ok/close", cmd: SessionClose{ID: "s1", End: testNow.Add(time.Minute), BytesIn: 10, BytesOut: 20, RecordingSHA256: digest, EndReason: "client closed"}, wantEnd: testNow.Add(time.Minute)},
		{name: "ok/end-before-start-clamped", cmd: SessionClose{ID: "s1", End: testNow.Add(-time.Second)}, wantEnd: testNow},
		{name: "ok/close-closed-is-no-op", closed: true, cmd: SessionClose{ID: "s1", End: testNow.Add(time.Hour), BytesIn: 99}, wantEnd: testNow.Add(time.Minute)},
		{name: "fail/unknown-session", cmd: SessionClose{ID: "zz", End: testNow}, wantErr: ErrNotFound},
		{name: "fail/no-end", cmd: SessionClose{ID: "s1"}, wantErr: ErrInvalid},
		{name: "fail/negative-bytes", cmd: SessionClose{ID: "s1", End: testNow, BytesOut: -5}, wantErr: ErrInvalid},
		{name: "fail/upper-case-digest", cmd: SessionClose{ID: "s1", End: testNow, RecordingSHA256: strings.ToUpper(digest)}, wantErr: ErrInvalid},
		{name: "fail/short-digest", cmd: SessionClose{ID: "s1", End: testNow, RecordingSHA256: "abcd"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &SessionOpen{Session: testSession("s1", "alice")})
			if tc.closed {
				mustApply(t, f, &SessionClose{ID: "s1", End: testNow.Add(time.Minute), BytesIn: 1})
			}
			ws := memdb.NewWatchSet()
			_, prior, err := f.State().SessionByID(ws, "s1")
			if err != nil {
				t.Fatal(err)
			}
			priorCopy := *prior
			before := f.State().LatestIndex()
			cmd := tc.cmd
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
			_, s, _ := f.State().SessionByID(nil, "s1")
			if s.Status != SessionClosed || !s.End.Equal(tc.wantEnd) {
				t.Fatalf("status %s end %s, want closed at %s", s.Status, s.End, tc.wantEnd)
			}
			if *prior != priorCopy {
				t.Fatal("the row read before the write was changed in place")
			}
			if tc.closed {
				if fired(ws) || f.State().LatestIndex() != before || s.BytesIn != 1 {
					t.Fatalf("closing a closed session changed it: %+v", s)
				}
				return
			}
			if !fired(ws) || s.ModifyIndex != res.Index || s.BytesIn != tc.cmd.BytesIn || s.BytesOut != tc.cmd.BytesOut ||
				s.RecordingSHA256 != tc.cmd.RecordingSHA256 || s.EndReason != tc.cmd.EndReason {
				t.Fatalf("closed session %+v does not match %+v", s, tc.cmd)
			}
		})
	}
}

func TestSessionQueries(t *testing.T) {
	f := testFSM(t)
	for _, s := range []Session{testSession("a1", "alice"), testSession("a2", "alice"), testSession("b1", "bob")} {
		mustApply(t, f, &SessionOpen{Session: s})
	}
	other := testSession("b2", "bob")
	other.ServerID, other.Node = "srv-db-1", "node-2"
	mustApply(t, f, &SessionOpen{Session: other})
	mustApply(t, f, &SessionClose{ID: "a2", End: testNow.Add(time.Minute)})
	st := f.State()
	ids := func(ss []*Session, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		name string
		got  func() ([]*Session, error)
		want string
	}{
		{name: "ok/all", got: func() ([]*Session, error) { _, ss, err := st.Sessions(nil); return ss, err }, want: "a1,a2,b1,b2"},
		{name: "ok/active", got: func() ([]*Session, error) { _, ss, err := st.ActiveSessions(nil); return ss, err }, want: "a1,b1,b2"},
		{name: "ok/by-user", got: func() ([]*Session, error) { _, ss, err := st.SessionsByUser(nil, "alice"); return ss, err }, want: "a1,a2"},
		{name: "ok/by-server", got: func() ([]*Session, error) { _, ss, err := st.SessionsByServer(nil, "srv-db-1"); return ss, err }, want: "b2"},
		{name: "ok/by-node", got: func() ([]*Session, error) { _, ss, err := st.SessionsByNode(nil, "node-1"); return ss, err }, want: "a1,a2,b1"},
		{name: "ok/unknown-user", got: func() ([]*Session, error) { _, ss, err := st.SessionsByUser(nil, "carol"); return ss, err }, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.got()); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("ok/closed-among", func(t *testing.T) {
		got := st.ClosedSessions([]string{"a1", "a2", "b1", "missing"})
		if len(got) != 1 || !got["a2"] {
			t.Fatalf("closed among a1,a2,b1,missing: got %v, want only a2", got)
		}
		if got := st.ClosedSessions([]string{"a1", "b2"}); got != nil {
			t.Fatalf("closed among a1,b2: got %v, want none", got)
		}
	})
}

func TestSessionCloseAfterKillKeepsCarrierFigures(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "u", Login: "u", UnixName: "u"}, Now: testNow})
	mustApply(t, f, &SessionOpen{Session: Session{ID: "s1", UserID: "u", Login: "u", ServerID: "srv", Node: "n1", Start: testNow}})
	// An administrator ends it first; then the carrying node reports.
	mustApply(t, f, &SessionClose{ID: "s1", End: testNow.Add(time.Minute), EndReason: "ended by administrator"})
	sum := strings.Repeat("ab", 32)
	mustApply(t, f, &SessionClose{ID: "s1", End: testNow.Add(2 * time.Minute), BytesIn: 10, BytesOut: 20, RecordingSHA256: sum, RecordingPath: "d/s1.cast", EndReason: "closed"})
	_, s, _ := f.State().SessionByID(nil, "s1")
	if s.EndReason != "ended by administrator" || !s.End.Equal(testNow.Add(time.Minute)) {
		t.Fatalf("the first close's end and reason were overwritten: %+v", s)
	}
	if s.BytesIn != 10 || s.BytesOut != 20 || s.RecordingSHA256 != sum || s.RecordingPath != "d/s1.cast" {
		t.Fatalf("the carrying node's figures were lost: %+v", s)
	}
	before := f.State().LatestIndex()
	mustApply(t, f, &SessionClose{ID: "s1", End: testNow, BytesIn: 99})
	if _, s2, _ := f.State().SessionByID(nil, "s1"); s2.BytesIn != 10 || f.State().LatestIndex() != before {
		t.Fatal("a third close changed the record")
	}
}

// A node watches SessionsClosedIndex(itself) for kills: it must change when
// one of its sessions closes, and not when sessions open or another node's
// session closes.
func TestSessionsClosedIndexPerNode(t *testing.T) {
	f := testFSM(t)
	st := f.State()
	n1 := func() uint64 { return st.MaxIndex(SessionsClosedIndex("n1")) }
	mustApply(t, f, &SessionOpen{Session: Session{ID: "s1", UserID: "u", Login: "u", ServerID: "srv", Node: "n1", Start: testNow}})
	mustApply(t, f, &SessionOpen{Session: Session{ID: "s2", UserID: "u", Login: "u", ServerID: "srv", Node: "n2", Start: testNow}})
	if got := n1(); got != 0 {
		t.Fatalf("opening sessions moved n1's closed index to %d", got)
	}
	mustApply(t, f, &SessionClose{ID: "s2", End: testNow})
	if got := n1(); got != 0 {
		t.Fatalf("closing n2's session moved n1's closed index to %d", got)
	}
	mustApply(t, f, &SessionClose{ID: "s1", End: testNow, EndReason: "ended by administrator"})
	killed := n1()
	if killed == 0 || killed != st.MaxIndex(tableSessions) {
		t.Fatalf("closing n1's session: n1's closed index %d, sessions table %d", killed, st.MaxIndex(tableSessions))
	}
	mustApply(t, f, &SessionClose{ID: "s1", End: testNow, BytesIn: 5})
	if got := n1(); got != killed {
		t.Fatalf("the carrier's figures after a kill moved n1's closed index from %d to %d", killed, got)
	}
}
