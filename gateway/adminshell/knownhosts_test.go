package adminshell

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The node host CA rotates on its own (the target host CA stays), and
// ca known-hosts trusts it for the nodes' names only, the target host CA
// for every other name.
func TestCANodeHostAndKnownHosts(t *testing.T) {
	h, keys := newCAHarness(t)
	pub, sealed, alg, err := keys.NewCAKey("node-host-ca-1", "")
	if err != nil {
		t.Fatal(err)
	}
	h.apply(&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "node-host-ca-1", Kind: raftstore.CANodeHost, PublicKey: pub, SealedKey: sealed,
		Algorithm: alg, State: raftstore.CAActive}, Now: h.now.Add(-time.Hour)})
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "10.0.0.11:8300", SSHAddr: "10.0.0.11:22",
		HostNames: []string{"bastion.example.com", "10.0.0.11"}}, Now: h.now})
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "10.0.0.12:8300", SSHAddr: "10.0.0.12:2222"}, Now: h.now})
	hostBefore := rotationState(t, h, raftstore.CAHost, "").Active

	v := decodeJSON[rotateView](t, h.mustRun("ca", "rotate", "node-host", "begin", "--json"))
	if v.Kind != "node-host" || v.Phase != "staged" || v.Active == nil || v.Active.ID != "node-host-ca-1" || v.Waiting == nil ||
		!strings.HasPrefix(v.Waiting.ID, "node-host-ca-") {
		t.Fatalf("node-host begin --json %+v", v)
	}
	if st := rotationState(t, h, raftstore.CAHost, ""); st.Phase != "stable" || st.Active.ID != hostBefore.ID {
		t.Errorf("the target host CA moved with the node host CA: %+v", st)
	}

	kh := decodeJSON[knownHostsView](t, h.mustRun("ca", "known-hosts", "--json"))
	const nodes = "10.0.0.11,10.0.0.12,[10.0.0.12]:2222,bastion.example.com"
	if len(kh.NodeHost) != 2 || kh.NodeHost[0] != "@cert-authority "+nodes+" "+pub || !strings.HasPrefix(kh.NodeHost[1], "@cert-authority "+nodes+" ") {
		t.Errorf("node host lines %q; want the active and the waiting key for %s", kh.NodeHost, nodes)
	}
	wantTarget := "@cert-authority *,!10.0.0.11,!10.0.0.12,![10.0.0.12]:2222,!bastion.example.com " + strings.TrimSpace(hostBefore.PublicKey)
	if len(kh.Host) != 1 || kh.Host[0] != wantTarget {
		t.Errorf("target host lines %q; want %q", kh.Host, wantTarget)
	}
	if out := h.mustRun("ca", "known-hosts"); !strings.Contains(out, kh.NodeHost[0]+"\n") || !strings.Contains(out, wantTarget+"\n") {
		t.Errorf("ca known-hosts:\n%s", out)
	}
	if out := h.mustRun("ca", "ls"); strings.Index(out, "node-host-ca-1") > strings.Index(out, "host-ca-1 ") {
		t.Errorf("the node host CA is not listed first:\n%s", out)
	}
}

// The active key comes first whatever the ids: a waiting key whose id
// sorts before the active one's is still listed second.
func TestKnownHostsActiveFirst(t *testing.T) {
	h, keys := newCAHarness(t)
	for _, r := range []struct {
		id    string
		state raftstore.CAState
	}{{"node-host-ca-1", raftstore.CAActive}, {"node-host-ca-0", raftstore.CANext}} {
		pub, sealed, alg, err := keys.NewCAKey(r.id, "")
		if err != nil {
			t.Fatal(err)
		}
		h.apply(&raftstore.CAUpsert{Record: raftstore.CARecord{ID: r.id, Kind: raftstore.CANodeHost, PublicKey: pub, SealedKey: sealed,
			Algorithm: alg, State: r.state}, Now: h.now})
	}
	h.apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "10.0.0.11:8300", SSHAddr: "10.0.0.11:22"}, Now: h.now})
	_, active, err := h.store.State().ActiveCA(nil, raftstore.CANodeHost, "")
	if err != nil || active == nil {
		t.Fatalf("active node host CA: %v %v", active, err)
	}
	kh := decodeJSON[knownHostsView](t, h.mustRun("ca", "known-hosts", "--json"))
	if len(kh.NodeHost) != 2 || !strings.HasSuffix(kh.NodeHost[0], " "+strings.TrimSpace(active.PublicKey)) {
		t.Errorf("node host lines %q; want the active key (%s) first", kh.NodeHost, active.ID)
	}
}
