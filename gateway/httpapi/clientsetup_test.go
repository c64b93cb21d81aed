package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// TestClientSetupEndpoint: GET /v1/client/setup names the jump host (on its
// own port) and the nodes' host names, and none of the nodes' addresses.
func TestClientSetupEndpoint(t *testing.T) {
	now := time.Now()
	srv := New(applyAll(t,
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "10.0.0.11:8300", APIAddr: "10.0.0.11:8443", SSHAddr: "10.0.0.11:22",
			HostNames: []string{"10.0.0.11", "bastion-1.example.com"}}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "10.0.0.12:8300", APIAddr: "10.0.0.12:8443", SSHAddr: "10.0.0.12:22",
			HostNames: []string{"10.0.0.12"}}, Now: now},
	), nil, slog.New(slog.DiscardHandler))
	srv.SetClientSetup("bastion.example.com:2222", []string{"*.prod.example.com"})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/client/setup", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
	}
	var cs api.ClientSetup
	if err := json.Unmarshal(rec.Body.Bytes(), &cs); err != nil {
		t.Fatal(err)
	}
	if want := []string{"[bastion.example.com]:2222", "bastion-1.example.com"}; !slices.Equal(cs.NodeNames, want) {
		t.Errorf("node_names = %v, want %v (the jump host, the host names, no address)", cs.NodeNames, want)
	}
	if cs.JumpHost != "bastion.example.com:2222" || !slices.Equal(cs.HostPatterns, []string{"*.prod.example.com"}) {
		t.Errorf("setup = %+v", cs)
	}
}
