package adminshell

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

func TestIdPConfirmed(t *testing.T) {
	s := raftstoretest.New(t)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s.MustApply(t, &raftstore.UserUpsert{User: raftstore.User{ID: "u1", Login: "alice", UnixName: "alice"}, Now: at})
	if got := idpConfirmed(s.State(), "u1", at); !strings.HasPrefix(got, "- (no refresh token") {
		t.Fatalf("without a record: %q", got)
	}
	s.MustApply(t, &raftstore.IdPSessionPut{UserID: "u1", RefreshSealed: []byte("sealed"), ConfirmedAt: at})
	s.MustApply(t, &raftstore.IdPSessionFailure{UserID: "u1", Reason: "the identity provider cannot be reached", Now: at.Add(time.Minute)})
	got := idpConfirmed(s.State(), "u1", at.Add(90*time.Second))
	if want := "2026-12-01T09:00:00Z (1m30s ago); 1 failed since, last: the identity provider cannot be reached"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if strings.Contains(got, "sealed") {
		t.Fatal("the sealed token shows")
	}
}
