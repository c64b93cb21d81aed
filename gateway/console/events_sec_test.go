package console

import (
	"strconv"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The session page shows a session's events however much of the audit log
// came before them (a recent session on a long-lived cluster).
func TestSessionEventsAfterALongLog(t *testing.T) {
	store := raftstoretest.New(t)
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	store.MustApply(t, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: at, Type: "session.open", Actor: "ann",
		Fields: map[string]string{"session": "s-old"}}}})
	for b := range 21 {
		evs := make([]raftstore.AuditEventInput, 0, raftstore.MaxAuditBatch)
		for i := range raftstore.MaxAuditBatch {
			evs = append(evs, raftstore.AuditEventInput{Time: at, Type: "login.ok", Actor: "bob",
				Fields: map[string]string{"n": strconv.Itoa(b*raftstore.MaxAuditBatch + i)}})
		}
		store.MustApply(t, &raftstore.AuditAppend{Events: evs})
	}
	store.MustApply(t, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{
		{Time: at, Type: "session.open", Actor: "ann", Fields: map[string]string{"session": "s-new", "node": "n1"}},
		{Time: at, Type: "session.close", Actor: "ann", Fields: map[string]string{"session": "s-new"}},
	}})
	got := sessionEvents(store.State(), "s-new")
	if len(got) != 2 || got[0].Type != "session.open" || got[1].Type != "session.close" {
		t.Fatalf("events of s-new: %+v", got)
	}
	if got := sessionEvents(store.State(), "s-old"); len(got) != 1 {
		t.Fatalf("events of s-old: %+v", got)
	}
}
