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

// unregisteredType returns a MessageType below the ignore flag that no
// command uses.
func unregisteredType(t *testing.T) MessageType {
	t.Helper()
	for mt := IgnoreUnknownFlag - 1; mt > 0; mt-- {
		if _, ok := commandTypes[mt]; !ok {
			return mt
		}
	}
	t.Fatal("every message type is registered")
	return 0
}

// frame builds a raw log entry.
func frame(mt MessageType, version byte, payload string) []byte {
	return append([]byte{byte(mt), version}, payload...)
}

func TestDecode(t *testing.T) {
	valid := mustEncode(t, &GroupDelete{Name: "ops"})
	unknown := unregisteredType(t)
	cases := []struct {
		name    string
		buf     []byte
		wantErr error
	}{
		{name: "ok/valid", buf: valid},
		{name: "ok/whitespace-after-payload", buf: append(bytes.Clone(valid), " \n"...)},
		{name: "fail/empty-frame", buf: nil, wantErr: ErrCorruptCommand},
		{name: "fail/one-byte-frame", buf: []byte{byte(GroupDeleteType)}, wantErr: ErrCorruptCommand},
		{name: "fail/header-without-payload", buf: frame(GroupDeleteType, commandVersion, ""), wantErr: ErrCorruptCommand},
		{name: "fail/corrupt-payload", buf: frame(GroupDeleteType, commandVersion, `{"Name":`), wantErr: ErrCorruptCommand},
		{name: "fail/not-json", buf: frame(GroupDeleteType, commandVersion, "\x00\xffgarbage"), wantErr: ErrCorruptCommand},
		{name: "fail/json-array", buf: frame(GroupDeleteType, commandVersion, `["ops"]`), wantErr: ErrCorruptCommand},
		{name: "fail/version-0", buf: frame(GroupDeleteType, 0, `{"Name":"ops"}`), wantErr: ErrCorruptCommand},
		{name: "fail/future-version", buf: frame(GroupDeleteType, commandVersion+1, `{"Name":"ops"}`), wantErr: ErrFutureVersion},
		{name: "fail/unknown-type", buf: frame(unknown, commandVersion, `{}`), wantErr: ErrUnknownCommand},
		{name: "fail/unknown-type-with-ignore-flag", buf: frame(unknown|IgnoreUnknownFlag, commandVersion, `{}`), wantErr: ErrUnknownCommand},
		{name: "fail/trailing-data", buf: append(bytes.Clone(valid), " x"...), wantErr: ErrCorruptCommand},
		{name: "fail/trailing-brace", buf: append(bytes.Clone(valid), "}"...), wantErr: ErrCorruptCommand},
		{name: "fail/second-object", buf: append(bytes.Clone(valid), `{"Name":"dev"}`...), wantErr: ErrCorruptCommand},
		// A field this node does not know: a newer version wrote it.
		{name: "fail/unknown-field", buf: frame(GroupDeleteType, commandVersion, `{"Name":"ops","Force":true}`), wantErr: ErrFutureVersion},
		{name: "fail/wrong-field-type", buf: frame(GroupDeleteType, commandVersion, `{"Name":5}`), wantErr: ErrCorruptCommand},
		{name: "fail/invalid-command", buf: frame(GroupDeleteType, commandVersion, `{"Name":""}`), wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Decode(tc.buf)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if cmd != nil {
					t.Fatalf("refused frame still decoded to %#v", cmd)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if gd, ok := cmd.(*GroupDelete); !ok || gd.Name != "ops" {
				t.Fatalf("decoded %#v", cmd)
			}
		})
	}
}

// accessCommands is one valid instance of each command of the access tables
// (bindings, sessions, audit, CA, service tokens), in MessageType order.
func accessCommands(t testing.TB) []Command {
	b := testBinding(t, 1, "alice")
	return []Command{
		&BindingUpsert{Binding: b, Now: testNow},
		&BindingDelete{Fingerprint: b.Fingerprint, UserID: "alice"},
		&SessionOpen{Session: testSession("s1", "alice")},
		&SessionClose{ID: "s1", End: testNow.Add(time.Minute), BytesIn: 1, BytesOut: 2, RecordingSHA256: strings.Repeat("0f", 32), EndReason: "eof"},
		&AuditAppend{Events: []AuditEventInput{{Time: testNow, Type: "login.ok", Actor: "alice", Fields: map[string]string{"k": "v"}}, {Time: testNow, Type: "x"}}},
		&CAUpsert{Record: testCA(t, "u1", CAUser, "prod", CAActive, 1), DemoteActiveTo: CARetired, Now: testNow},
		&CADelete{ID: "u1"},
		&ServiceTokenCreate{Token: testServiceToken("t1", "ci", "secret"), Now: testNow},
		&ServiceTokenTouch{ID: "t1", At: testNow},
		&ServiceTokenDelete{ID: "t1"},
	}
}

// TestAccessCommandsRoundTrip checks that every command survives the log's
// framing unchanged (Decode refuses unknown fields, so a field that does not
// round-trip shows here first) and is registered under its own type.
func TestAccessCommandsRoundTrip(t *testing.T) {
	for _, cmd := range accessCommands(t) {
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

// TestEveryMessageTypeRegistered checks that each declared MessageType has a
// command, and that each command reports the type it is registered under.
func TestEveryMessageTypeRegistered(t *testing.T) {
	declared := []MessageType{
		ClusterInitType, NodeUpsertType, NodeDeleteType, UserUpsertType, UserSetStatusType,
		GroupUpsertType, GroupDeleteType, ProjectUpsertType, ProjectDeleteType, GrantUpsertType,
		GrantDeleteType, ServerUpsertType, ServerDeleteType, ServerSeenType, TokenCreateType,
		TokenUseType, TokenDeleteType, EntitlementUpsertType, EntitlementDeleteType, BindingUpsertType,
		BindingDeleteType, SessionOpenType, SessionCloseType, AuditAppendType, CAUpsertType,
		CADeleteType, ServiceTokenCreateType, ServiceTokenDeleteType, AgentEventsAppendType,
		ServerAgentKeyType, TokenPruneType, AgentAppliedSetType, UserSCIMPutType, SCIMGroupPutType,
		ServiceTokenTouchType,
	}
	for _, mt := range declared {
		if _, ok := commandTypes[mt]; !ok {
			t.Errorf("message type %d has no command", mt)
		}
	}
	for _, mt := range KnownCommandTypes() {
		if got := commandTypes[mt]().Type(); got != mt {
			t.Errorf("command registered as %d reports type %d", mt, got)
		}
	}
}

func TestApplyCommandRefusals(t *testing.T) {
	unknown := unregisteredType(t)
	cases := []struct {
		name      string
		buf       []byte
		wantErr   error // the ApplyResult's error; nil with wantPanic false: skipped
		wantPanic bool
	}{
		{name: "ok/unknown-type-with-ignore-flag-skipped", buf: frame(unknown|IgnoreUnknownFlag, commandVersion, `{"Anything":1}`)},
		{name: "ok/future-version-with-ignore-flag-skipped", buf: frame(GroupDeleteType|IgnoreUnknownFlag, commandVersion+1, `{"Name":"ops"}`)},
		{name: "fail/corrupt-payload", buf: frame(UserSetStatusType, commandVersion, `{"ID":"a",`), wantErr: ErrCorruptCommand},
		{name: "fail/empty-frame", buf: []byte{}, wantErr: ErrCorruptCommand},
		{name: "fail/one-byte-frame", buf: []byte{byte(UserSetStatusType)}, wantErr: ErrCorruptCommand},
		// A field this node does not know was written by a newer version:
		// the node stops ("upgrade it") rather than skip what the leader
		// applied and diverge (a rolling upgrade found old nodes doing that).
		{name: "fail/unknown-field-panics", buf: frame(UserSetStatusType, commandVersion, `{"ID":"a","Status":"disabled","Why":"x"}`), wantPanic: true},
		{name: "ok/unknown-field-with-ignore-flag-skipped", buf: frame(UserSetStatusType|IgnoreUnknownFlag, commandVersion, `{"ID":"a","Status":"disabled","Why":"x"}`)},
		{name: "fail/invalid-command", buf: frame(UserSetStatusType, commandVersion, `{"ID":"a","Status":"gone"}`), wantErr: ErrInvalid},
		{name: "fail/unknown-type-panics", buf: frame(unknown, commandVersion, `{}`), wantPanic: true},
		{name: "fail/future-version-panics", buf: frame(UserSetStatusType, commandVersion+1, `{"ID":"a","Status":"disabled"}`), wantPanic: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, &UserUpsert{User: User{ID: "a", Login: "a", UnixName: "a"}, Now: testNow})
			before := f.State().LatestIndex()
			st := f.State()
			res, panicMsg := applyRecovering(f, before+1, tc.buf)
			switch {
			case tc.wantPanic:
				if !strings.Contains(panicMsg, "upgrade") {
					t.Fatalf("panic %q, want one that says to upgrade", panicMsg)
				}
			case panicMsg != "":
				t.Fatalf("unexpected panic: %s", panicMsg)
			case !errors.Is(res.Err, tc.wantErr):
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			case tc.wantErr == nil && res.Value != nil:
				t.Fatalf("a skipped command returned %v", res.Value)
			}
			if f.State() != st || f.State().LatestIndex() != before {
				t.Fatalf("refused command changed the state: index %d -> %d", before, f.State().LatestIndex())
			}
			if _, u, _ := f.State().UserByID(nil, "a"); u == nil || u.Status != UserActive {
				t.Fatalf("user changed: %+v", u)
			}
		})
	}
}

// applyRecovering applies buf and turns a panic into its message.
func applyRecovering(f *FSM, index uint64, buf []byte) (res *ApplyResult, panicMsg string) {
	defer func() {
		if r := recover(); r != nil {
			panicMsg = fmt.Sprint(r)
			if panicMsg == "" {
				panicMsg = "(empty panic)"
			}
		}
	}()
	return f.ApplyCommand(index, buf), ""
}
