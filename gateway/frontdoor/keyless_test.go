package frontdoor

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// waitIdPSession waits until the person's IdP session record satisfies ok.
func waitIdPSession(t *testing.T, d *door, userID string, ok func(*raftstore.IdPSession) bool) *raftstore.IdPSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var index uint64
	for {
		var rec *raftstore.IdPSession
		next, err := raftstore.BlockingQuery(ctx, d.store, index, time.Second, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
			_, r, err := st.IdPSessionByUser(ws, userID)
			rec = r
			return st.MaxIndexWatch(ws, "idp_sessions"), err
		})
		if err != nil {
			t.Fatalf("waiting for %s's IdP session: %v (last %+v)", userID, err, rec)
		}
		if ok(rec) {
			return rec
		}
		index = next
	}
}

// A connection signed in without a key holds its person's IdP session while
// it is open, so that re-validation keeps covering them (an admin shell
// would otherwise outlive the IdP's verdict), and releases it when it ends.
func TestKeylessConnectionHoldsIdPSession(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	raw := make([]byte, ca.KEKSize)
	_, _ = rand.Read(raw)
	kek, err := ca.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	d.svc.SetRefreshTokens(kek, time.Hour)
	conn, err := (&client{onPrompt: approveAs("alice", "alice-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatalf("sign in without a key: %v", err)
	}
	_, alice, err := d.store.State().UserByLogin(nil, whoamiOf(t, conn).Login)
	if err != nil || alice == nil {
		t.Fatalf("alice: %v %v", alice, err)
	}
	rec := waitIdPSession(t, d, alice.ID, func(r *raftstore.IdPSession) bool { return r != nil })
	if !rec.HeldAt(time.Now()) || rec.HeldAt(time.Now().Add(keylessHoldTTL+time.Minute)) || d.srv.KeylessConnections() != 1 {
		t.Fatalf("IdP session of the open keyless connection %+v, keyless people %d", rec, d.srv.KeylessConnections())
	}
	_ = conn.Close()
	waitIdPSession(t, d, alice.ID, func(r *raftstore.IdPSession) bool { return r != nil && len(r.Holds) == 0 })
}
