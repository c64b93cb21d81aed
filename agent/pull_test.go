package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
)

// stateNode is one more node of a renewCluster's CA that serves state
// pulls: the state says the cluster is at cluster(), and each pull's
// applied parameter is recorded.
type stateNode struct {
	ts *httptest.Server

	mu      sync.Mutex
	applied []string
}

func newStateNode(t *testing.T, tca *ca.TLSCA, cluster func() []string) *stateNode {
	t.Helper()
	n := &stateNode{}
	n.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.applied = append(n.applied, r.URL.Query().Get(api.AgentAppliedParam))
		n.mu.Unlock()
		_ = json.NewEncoder(w).Encode(api.AgentState{Index: 5, ServerID: "srv-1", Cluster: cluster()})
	}))
	startNodeTLS(t, n.ts, tca, "n")
	return n
}

func (n *stateNode) addr() string { return n.ts.Listener.Addr().String() }

func (n *stateNode) appliedParams() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.applied)
}

// An agent enrolled with one node's address learns the others from its
// state, keeps them in its data dir, and fails over to them when that node
// is gone, restarted or not.
func TestPullerFollowsTheCluster(t *testing.T) {
	c := newRenewCluster(t)
	dir, id := c.enroll(t, time.Hour)
	var a, b *stateNode
	cluster := func() []string { return []string{a.addr(), b.addr()} }
	a = newStateNode(t, c.ca, cluster)
	b = newStateNode(t, c.ca, cluster)
	id.Cluster = []string{a.addr()} // the token named only a

	p, err := NewPuller(dir, id, time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	want := cluster()
	slices.Sort(want)
	if got := p.Addrs(); !slices.Equal(got, want) {
		t.Fatalf("after the first state the agent knows %v, want %v", got, want)
	}
	var kept []string
	if raw, err := os.ReadFile(filepath.Join(dir, clusterFile)); err != nil || json.Unmarshal(raw, &kept) != nil || !slices.Equal(kept, want) {
		t.Fatalf("%s holds %q (%v), want %v", clusterFile, raw, err, want)
	}

	a.ts.Close()
	// Applied before the failover: the poll that reaches b reports it.
	p.Applied(4)
	if _, err := p.Next(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := b.appliedParams(); len(got) != 1 || got[0] != "4" {
		t.Fatalf("b's pulls reported applied %q, want one pull with 4", got)
	}

	// A restarted agent starts from the kept list, not the token's.
	p2, err := NewPuller(dir, id, time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := p2.Addrs(); !slices.Equal(got, want) {
		t.Fatalf("after a restart the agent knows %v, want %v", got, want)
	}
	if _, err := p2.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := b.appliedParams(); len(got) != 2 || got[1] != "" {
		t.Fatalf("b's pulls reported applied %q, want a second pull reporting nothing (a new agent process applied nothing yet)", got)
	}
}

// The configured addresses come first; the cluster's list after them.
func TestClusterAddrsOrder(t *testing.T) {
	dir := t.TempDir()
	c, err := loadClusterAddrs(dir, []string{"10.0.0.9:8443"}, []string{"10.0.0.1:8443"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.List(), []string{"10.0.0.9:8443", "10.0.0.1:8443"}; !slices.Equal(got, want) {
		t.Fatalf("before any state: %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name    string
		update  []string
		changed bool
		want    []string
	}{
		{"ok/learned", []string{"10.0.0.3:8443", "10.0.0.9:8443", "10.0.0.2:8443"}, true, []string{"10.0.0.9:8443", "10.0.0.2:8443", "10.0.0.3:8443"}},
		{"ok/same-list-other-order", []string{"10.0.0.2:8443", "10.0.0.3:8443", "10.0.0.9:8443"}, false, []string{"10.0.0.9:8443", "10.0.0.2:8443", "10.0.0.3:8443"}},
		{"ok/empty-from-an-older-node", nil, false, []string{"10.0.0.9:8443", "10.0.0.2:8443", "10.0.0.3:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := c.Update(tc.update)
			if err != nil || changed != tc.changed {
				t.Fatalf("Update: changed %v, %v; want %v", changed, err, tc.changed)
			}
			if got := c.List(); !slices.Equal(got, tc.want) {
				t.Fatalf("List() = %v, want %v", got, tc.want)
			}
		})
	}
}
