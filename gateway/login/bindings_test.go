package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

func newKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBindingsOfTheirOwn: a binding from a host none of the person's earlier
// bindings came from is audited (not the first one: nothing to compare
// with); a person lists and revokes only their own bindings.
func TestBindingsOfTheirOwn(t *testing.T) {
	ctx := context.Background()
	store := raftstoretest.New(t)
	svc := NewService(store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	audit := &fakeAuditor{}
	svc.SetAuditor(audit)
	alice, err := svc.Provision(ctx, &Identity{Subject: "s-alice", Login: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := svc.Provision(ctx, &Identity{Subject: "s-mallory", Login: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	audit.events = nil
	newAddress := func() []recordedEvent {
		var out []recordedEvent
		for _, e := range audit.events {
			if e.event == "binding.flag" {
				out = append(out, e)
			}
		}
		return out
	}

	laptop, second, phished := newKey(t), newKey(t), newKey(t)
	steps := []struct {
		name    string
		key     ssh.PublicKey
		remote  string
		flagged bool
	}{
		{name: "ok/first-binding-not-flagged", key: laptop, remote: "192.0.2.1:50000"},
		{name: "ok/same-host-other-port", key: second, remote: "192.0.2.1:50001"},
		{name: "fail/new-host-flagged", key: phished, remote: "203.0.113.9:40000", flagged: true},
	}
	for _, st := range steps {
		before := len(newAddress())
		b, err := svc.Bind(ctx, alice, st.key, BindInfo{SourceAddr: st.remote})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := newAddress()[before:]
		if (len(got) == 1) != st.flagged || len(got) > 1 {
			t.Fatalf("%s: binding.new_address events %+v; want flagged=%v", st.name, got, st.flagged)
		}
		if st.flagged && (got[0].fields["fingerprint"] != b.Fingerprint || got[0].fields["remote"] != st.remote || got[0].fields["known_addrs"] != "192.0.2.1" || got[0].user != "alice") {
			t.Fatalf("%s: event %+v", st.name, got[0])
		}
	}
	// Mallory's first binding is not compared with Alice's hosts.
	if _, err := svc.Bind(ctx, mallory, newKey(t), BindInfo{SourceAddr: "198.51.100.7:1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(newAddress()); n != 1 {
		t.Fatalf("mallory's first binding flagged: %d events", n)
	}

	live, err := svc.LiveBindings(alice.ID)
	if err != nil || len(live) != 3 {
		t.Fatalf("alice's live bindings: %d, %v", len(live), err)
	}
	phishedFP := ssh.FingerprintSHA256(phished)
	if ok, err := svc.Unbind(ctx, mallory, phishedFP, "198.51.100.7:2"); err != nil || ok {
		t.Fatalf("mallory revoking alice's binding: found=%v err=%v; want nothing done", ok, err)
	}
	if _, b, _ := store.State().BindingByFingerprint(nil, phishedFP); b == nil {
		t.Fatal("another user's revoke removed alice's binding")
	}
	if ok, err := svc.Unbind(ctx, alice, phishedFP, "192.0.2.1:50002"); err != nil || !ok {
		t.Fatalf("alice revoking her binding: found=%v err=%v", ok, err)
	}
	if _, b, _ := store.State().BindingByFingerprint(nil, phishedFP); b != nil {
		t.Fatal("the revoked binding is still there")
	}
	if user, _, err := svc.BoundUser(phished); err != nil || user != nil {
		t.Fatalf("the revoked key still signs in as %v (%v)", user, err)
	}
	last := audit.events[len(audit.events)-1]
	if last.event != "binding.revoke" || last.fields["fingerprint"] != phishedFP || last.fields["by"] != "self" {
		t.Fatalf("last audit event %+v; want binding.revoked by self", last)
	}
	if live, _ := svc.LiveBindings(alice.ID); len(live) != 2 {
		t.Fatalf("alice has %d live bindings after revoking one; want 2", len(live))
	}
}
