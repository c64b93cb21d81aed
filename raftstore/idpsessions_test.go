package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func idpSession(t *testing.T, f *FSM, user string) *IdPSession {
	t.Helper()
	_, s, err := f.State().IdPSessionByUser(nil, user)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A sign-in stores the sealed token; a refresh replaces it only when the
// record is the one it read (a newer sign-in wins); failures are counted
// until the next confirmation; only active people get a record.
func TestIdPSessionPutAndRotate(t *testing.T) {
	f := testFSM(t)
	addTestUsers(t, f, "alice")
	mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("sealed-1"), ConfirmedAt: testNow})
	s1 := idpSession(t, f, "alice")
	if s1 == nil || string(s1.RefreshSealed) != "sealed-1" || !s1.ConfirmedAt.Equal(testNow) {
		t.Fatalf("after sign-in: %+v", s1)
	}

	// A sign-in on another node meanwhile: the refresh that read s1 loses.
	mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("sealed-2"), ConfirmedAt: testNow.Add(time.Minute)})
	res := apply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("rotated-from-1"), ConfirmedAt: testNow.Add(2 * time.Minute), IfIndex: s1.ModifyIndex})
	if !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("stale rotation: %v, want a conflict", res.Err)
	}
	s2 := idpSession(t, f, "alice")
	if string(s2.RefreshSealed) != "sealed-2" || s2.CreateIndex != s1.CreateIndex {
		t.Fatalf("after the stale rotation: %+v", s2)
	}

	// Failures are counted, then cleared by a confirmation.
	if got := mustApply(t, f, &IdPSessionFailure{UserID: "alice", Reason: "idp unreachable\nforged line", IfIndex: s2.ModifyIndex, Now: testNow}); got != true {
		t.Fatalf("failure recorded: %v", got)
	}
	s3 := idpSession(t, f, "alice")
	if s3.Failures != 1 || strings.Contains(s3.LastFailure, "\n") || !s3.LastFailureAt.Equal(testNow) {
		t.Fatalf("after a failure: %+v", s3)
	}
	if got := mustApply(t, f, &IdPSessionFailure{UserID: "alice", Reason: "late", IfIndex: s2.ModifyIndex, Now: testNow}); got != false {
		t.Fatal("a failure for a record read before a change was recorded")
	}
	mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("sealed-3"), ConfirmedAt: testNow.Add(3 * time.Minute), IfIndex: s3.ModifyIndex})
	if s4 := idpSession(t, f, "alice"); string(s4.RefreshSealed) != "sealed-3" || s4.Failures != 0 || s4.LastFailure != "" {
		t.Fatalf("after the rotation: %+v", s4)
	}

	// Nobody inactive or unknown keeps a token.
	mustApply(t, f, &UserSetStatus{ID: "alice", Status: UserDisabled, Now: testNow})
	if res := apply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("x"), ConfirmedAt: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("put for a disabled person: %v", res.Err)
	}
	if res := apply(t, f, &IdPSessionPut{UserID: "nobody", RefreshSealed: []byte("x"), ConfirmedAt: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("put for an unknown person: %v", res.Err)
	}
	if got := mustApply(t, f, &IdPSessionDelete{UserID: "alice"}); got != true || idpSession(t, f, "alice") != nil {
		t.Fatalf("delete: %v", got)
	}
}

// The token goes with the person's last binding, whichever way the
// bindings go.
func TestIdPSessionDroppedWithLastBinding(t *testing.T) {
	cases := []struct {
		name string
		del  func(a1, a2, b1 Binding) []Command
		keep bool // alice keeps her record
	}{
		{"ok/one-of-two-keeps", func(a1, _, _ Binding) []Command {
			return []Command{&BindingDelete{Fingerprint: a1.Fingerprint, UserID: "alice"}}
		}, true},
		{"ok/both-drop", func(a1, a2, _ Binding) []Command {
			return []Command{&BindingDelete{Fingerprint: a1.Fingerprint}, &BindingDelete{Fingerprint: a2.Fingerprint}}
		}, false},
		{"ok/by-user", func(_, _, _ Binding) []Command { return []Command{&BindingDelete{UserID: "alice"}} }, false},
		{"ok/all", func(_, _, _ Binding) []Command { return []Command{&BindingDelete{All: true}} }, false},
		{"ok/others-binding", func(_, _, b1 Binding) []Command { return []Command{&BindingDelete{Fingerprint: b1.Fingerprint}} }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			addTestUsers(t, f, "alice", "bob")
			a1, a2, b1 := testBinding(t, 1, "alice"), testBinding(t, 2, "alice"), testBinding(t, 3, "bob")
			for _, b := range []Binding{a1, a2, b1} {
				mustApply(t, f, &BindingUpsert{Binding: b, Now: testNow})
			}
			mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("s"), ConfirmedAt: testNow})
			for _, cmd := range tc.del(a1, a2, b1) {
				mustApply(t, f, cmd)
			}
			if got := idpSession(t, f, "alice") != nil; got != tc.keep {
				t.Fatalf("alice's record kept: %v, want %v", got, tc.keep)
			}
		})
	}
}

func TestIdPSessionCommandsRoundTrip(t *testing.T) {
	for _, cmd := range []Command{
		&IdPSessionPut{UserID: "alice", RefreshSealed: []byte{1, 2, 3}, ConfirmedAt: testNow, IfIndex: 7},
		&IdPSessionFailure{UserID: "alice", Reason: "unreachable", IfIndex: 7, Now: testNow},
		&IdPSessionDelete{UserID: "alice"},
	} {
		t.Run("ok/"+strings.TrimPrefix(fmt.Sprintf("%T", cmd), "*raftstore."), func(t *testing.T) {
			if newCmd, ok := commandTypes[cmd.Type()]; !ok || newCmd().Type() != cmd.Type() {
				t.Fatalf("type %d is not registered to this command", cmd.Type())
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
		})
	}
}

// A front door's hold (an open keyless connection) keeps a person's IdP
// session when their last binding goes; releasing it, the next binding
// deletion drops it. A hold moves no ModifyIndex, so a refresh that read
// the record before still stores its rotated token.
func TestIdPSessionHold(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &UserUpsert{User: User{ID: "alice", Login: "alice", UnixName: "alice"}, Now: testNow})
	mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 1, "alice"), Now: testNow})
	mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("s1"), ConfirmedAt: testNow})
	read := idpSession(t, f, "alice")
	if held := mustApply(t, f, &IdPSessionHold{UserID: "alice", Holder: "door-1", Until: testNow.Add(time.Minute)}); held != true {
		t.Fatalf("hold: %v", held)
	}
	if s := idpSession(t, f, "alice"); !s.HeldAt(testNow) || s.HeldAt(testNow.Add(time.Minute)) || s.ModifyIndex != read.ModifyIndex {
		t.Fatalf("held record %+v", s)
	}
	mustApply(t, f, &IdPSessionPut{UserID: "alice", RefreshSealed: []byte("s2"), ConfirmedAt: testNow, IfIndex: read.ModifyIndex})
	mustApply(t, f, &BindingDelete{UserID: "alice"})
	if s := idpSession(t, f, "alice"); s == nil || string(s.RefreshSealed) != "s2" || len(s.Holds) != 1 {
		t.Fatalf("after the last binding went, the held record is %+v", s)
	}
	mustApply(t, f, &IdPSessionHold{UserID: "alice", Holder: "door-1"})
	if s := idpSession(t, f, "alice"); s == nil || s.Holds != nil {
		t.Fatalf("after release %+v", s)
	}
	mustApply(t, f, &BindingUpsert{Binding: testBinding(t, 2, "alice"), Now: testNow})
	mustApply(t, f, &BindingDelete{UserID: "alice"})
	if s := idpSession(t, f, "alice"); s != nil {
		t.Fatalf("unheld record without bindings kept: %+v", s)
	}
	if held := mustApply(t, f, &IdPSessionHold{UserID: "alice", Holder: "door-1", Until: testNow.Add(time.Minute)}); held != false {
		t.Fatalf("hold without a record: %v", held)
	}
}
