package raftstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAuditExportCursor(t *testing.T) {
	f := testFSM(t)
	events := make([]AuditEventInput, 10)
	for i := range events {
		events[i] = AuditEventInput{Time: testNow, Type: "test.event", Actor: "t"}
	}
	mustApply(t, f, &AuditAppend{Events: events})
	for _, tc := range []struct {
		name    string
		seq     uint64
		want    uint64
		wantErr error
	}{
		{name: "ok/first", seq: 4, want: 4},
		{name: "ok/forward", seq: 7, want: 7},
		{name: "ok/backwards-is-a-no-op", seq: 5, want: 7},
		{name: "ok/past-the-head-is-cut-to-it", seq: 99, want: 10},
		{name: "fail/bad-name", seq: 8, want: 10, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := "siem"
			if tc.wantErr != nil {
				sink = "Bad Name"
			}
			res := apply(t, f, &AuditExportCursorSet{Sink: sink, Seq: tc.seq, Node: "n1", At: testNow})
			if !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			if _, c, _ := f.State().AuditExportCursorOf(nil, "siem"); c == nil || c.Seq != tc.want {
				t.Errorf("cursor %+v, want seq %d", c, tc.want)
			}
		})
	}
}

func TestAuditSinkState(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &AuditExportCursorSet{Sink: "siem", Seq: 0, Node: "n1", At: testNow})
	later := testNow.Add(time.Minute)
	mustApply(t, f, &AuditSinkStateSet{Sink: "siem", Failing: true, At: testNow, Error: "refused"})
	mustApply(t, f, &AuditSinkStateSet{Sink: "siem", Failing: true, At: later, Error: "timeout"})
	_, c, _ := f.State().AuditExportCursorOf(nil, "siem")
	if !c.FailingSince.Equal(testNow) || c.LastError != "timeout" {
		t.Fatalf("after two failures: %+v, want failing since the first, the last error", c)
	}
	mustApply(t, f, &AuditSinkStateSet{Sink: "siem", At: later})
	if _, c, _ = f.State().AuditExportCursorOf(nil, "siem"); !c.FailingSince.IsZero() || c.LastError != "" {
		t.Fatalf("after recovery: %+v", c)
	}
	res := apply(t, f, &AuditSinkStateSet{Sink: "siem", Failing: true, At: later, Error: strings.Repeat("x", 600)})
	if !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("a 600-byte error: %v, want ErrInvalid", res.Err)
	}
}
