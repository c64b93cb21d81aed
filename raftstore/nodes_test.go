package raftstore

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// TestNodeKey: a node record keeps the key it was given at join through
// upserts that carry none (a node's address update), and a certificate key
// speaks for the node only if it is that key.
func TestNodeKey(t *testing.T) {
	f := testFSM(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := HashNodeKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", KeyHash: h}, Now: testNow})
	mustApply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", APIAddr: "10.0.0.2:8443"}, Now: testNow})
	_, n, err := f.State().NodeByID(nil, "n2")
	if err != nil || n == nil {
		t.Fatalf("node n2: %v, %v", n, err)
	}
	if n.KeyHash != h || n.APIAddr != "10.0.0.2:8443" {
		t.Fatalf("n2 after an address update = %+v; want key %s kept", n, h)
	}
	if !n.HoldsKey(pub) || n.HoldsKey(other) {
		t.Errorf("HoldsKey(own) = %v, HoldsKey(other) = %v; want true, false", n.HoldsKey(pub), n.HoldsKey(other))
	}
	if legacy := (&Node{ID: "n3"}); !legacy.HoldsKey(other) {
		t.Error("a node recorded before keys were refuses its certificate")
	}
	// A second join of n2 racing the first must not replace its key.
	otherHash, err := HashNodeKey(other)
	if err != nil {
		t.Fatal(err)
	}
	if res := apply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", KeyHash: otherHash}, Now: testNow}); !errors.Is(res.Err, ErrConflict) {
		t.Errorf("another key for n2: %v; want a conflict", res.Err)
	}
	if _, n, _ := f.State().NodeByID(nil, "n2"); n == nil || n.KeyHash != h {
		t.Errorf("n2 after another key was offered: %+v; want key %s kept", n, h)
	}
	res := apply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", KeyHash: "not-hex"}, Now: testNow})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "node key hash") {
		t.Errorf("a malformed key hash: %v; want it refused", res.Err)
	}
}

// A node's own update of its record (Existing) never brings back a node
// removed while the update was on its way: the removal stands.
func TestNodeUpdateAfterRemoval(t *testing.T) {
	f := testFSM(t)
	mustApply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300"}, Now: testNow})
	mustApply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", HostNames: []string{"n2.example"}}, Existing: true, Now: testNow})
	mustApply(t, f, &NodeDelete{ID: "n2"})
	before := f.State().LatestIndex()
	res := apply(t, f, &NodeUpsert{Node: Node{ID: "n2", RaftAddr: "10.0.0.2:8300", HostNames: []string{"n2.example"}}, Existing: true, Now: testNow})
	if !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("update of a removed node: %v, want ErrNotFound", res.Err)
	}
	if _, n, _ := f.State().NodeByID(nil, "n2"); n != nil || f.State().LatestIndex() != before {
		t.Fatalf("the removed node is back: %+v", n)
	}
}
