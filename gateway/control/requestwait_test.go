package control

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// A person's waiting `request` command on a follower asks for a request the
// leader has just made, at the index the leader answered with: the wait
// holds until this replica applies it, instead of reporting it lost.
func TestWaitAccessRequestNotYetApplied(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "jit", Settings: raftstore.ProjectSettings{
		Requests: &raftstore.RequestPolicy{Approvers: []string{"ops"}}}}, Now: testNow})
	seen := h.store.FSM().AppliedIndex() + 1 // the create's index, on the leader
	const id = "r-abcdefgh"
	go func() {
		time.Sleep(50 * time.Millisecond)
		h.apply(&raftstore.AccessRequestCreate{ID: id, Project: "jit", UserID: "sub-bob", Login: "bob", Reason: "incident 7",
			Duration: time.Hour, Now: testNow})
	}()
	r, next, err := h.svc.WaitAccessRequest(context.Background(), id, seen-1, 5*time.Second)
	if err != nil {
		t.Fatalf("wait for a request not yet applied here: %v", err)
	}
	if r == nil || r.ID != id || next < seen {
		t.Fatalf("request %+v at index %d; want %s at %d or later", r, next, id, seen)
	}
}
