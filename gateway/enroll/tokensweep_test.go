package enroll

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// Expired tokens leave the store a grace period after they expire, on the
// leader's sweep, and only then.
func TestTokenSweep(t *testing.T) {
	st := raftstoretest.New(t)
	created := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if _, err := st.Apply(t.Context(), &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: created}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []raftstore.Token{
		{Hash: strings.Repeat("a", 64), Kind: raftstore.TokenEnroll, Project: "web", UsesLeft: raftstore.UnlimitedUses, ExpiresAt: created.Add(time.Hour)},
		{Hash: strings.Repeat("b", 64), Kind: raftstore.TokenEnroll, Project: "web", UsesLeft: raftstore.UnlimitedUses},
	} {
		if _, err := st.Apply(t.Context(), &raftstore.TokenCreate{Token: tok, Now: created}); err != nil {
			t.Fatal(err)
		}
	}
	now := created
	s := NewTokenSweeper(st, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	count := func() int {
		_, toks, _ := st.State().Tokens(nil)
		return len(toks)
	}
	writes := st.Applied()

	// Expired, but within the grace: kept, and nothing written.
	now = created.Add(time.Hour + tokenExpiryGrace - time.Second)
	if n, err := s.sweep(t.Context()); n != 0 || err != nil || count() != 2 || st.Applied() != writes {
		t.Fatalf("within the grace: pruned %d (%v), %d left, %d writes", n, err, count(), st.Applied()-writes)
	}
	// Past the grace, on a follower: nothing.
	now = created.Add(time.Hour + tokenExpiryGrace)
	st.SetLeader(false)
	if n, err := s.sweep(t.Context()); n != 0 || err != nil || count() != 2 {
		t.Fatalf("follower: pruned %d (%v), %d left", n, err, count())
	}
	// On the leader: the expired token goes, the other stays.
	st.SetLeader(true)
	if n, err := s.sweep(t.Context()); n != 1 || err != nil || count() != 1 {
		t.Fatalf("leader past the grace: pruned %d (%v), %d left", n, err, count())
	}
}
