package httpapi

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// PUT /v1/servers/{id} on an enrolled server edits what an administrator
// may edit and keeps what its enrollment recorded: clone detection (the
// machine id), the instance id and the host keys survive, and a new
// address is refused with a message saying why.
func TestPutEnrolledServer(t *testing.T) {
	ts, h, _ := newAdminAPI(t)
	st := h.store
	key := strings.TrimSpace(testHostKey(t))
	if _, err := st.Apply(t.Context(), &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(t.Context(), &raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22,
		HostKeys: []string{key}, EnrollMethod: raftstore.EnrollAWS, MachineID: "m1", InstanceID: "i-0abc", AgentKeyHash: strings.Repeat("a", 64)},
		SetAgentKey: true, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + testAdminSecret
	put := func(s api.Server) (int, string) {
		b, _ := json.Marshal(s)
		return do(t, http.MethodPut, ts.URL+"/v1/servers/s1", auth, string(b))
	}
	if code, body := put(api.Server{Project: "web", Name: "web-1", Addr: "10.0.0.1", Labels: map[string]string{"env": "prod"}}); code != http.StatusOK {
		t.Fatalf("label edit: HTTP %d %s", code, body)
	}
	_, got, _ := st.State().ServerByID(nil, "s1")
	if got.MachineID != "m1" || got.InstanceID != "i-0abc" || len(got.HostKeys) != 1 || got.Labels["env"] != "prod" {
		t.Fatalf("after the edit: %+v; want machine id, instance id and host key kept", got)
	}
	// An omitted address keeps the current one.
	if code, body := put(api.Server{Project: "web", Name: "web-1"}); code != http.StatusOK {
		t.Fatalf("edit without an address: HTTP %d %s", code, body)
	}
	code, body := put(api.Server{Project: "web", Name: "web-1", Addr: "10.0.0.9"})
	if code != http.StatusConflict || !strings.Contains(body, "enroll it again") {
		t.Fatalf("address change: HTTP %d %s; want 409 saying to enroll again", code, body)
	}
	if _, got, _ := st.State().ServerByID(nil, "s1"); got.Addr != "10.0.0.1" {
		t.Fatalf("address changed to %s", got.Addr)
	}
}

// Registration applies the jump's target rule.
func TestPutServerTargetRule(t *testing.T) {
	ts, h, _ := newAdminAPI(t)
	if _, err := h.store.Apply(t.Context(), &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	machine := func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, nil }
	for _, tc := range []struct {
		name string
		rule targetaddr.Rule
		addr string
		port int
		want int
	}{
		{"ok/remote", targetaddr.Rule{}, "10.0.0.7", 22, http.StatusOK},
		{"ok/host-name", targetaddr.Rule{}, "db.internal", 22, http.StatusOK},
		{"ok/loopback-allowed", targetaddr.Rule{AllowLoopback: true}, "127.0.0.31", 22, http.StatusOK},
		{"fail/loopback", targetaddr.Rule{}, "127.0.0.31", 22, http.StatusBadRequest},
		{"fail/metadata", targetaddr.Rule{}, "169.254.169.254", 22, http.StatusBadRequest},
		{"fail/own-listener", targetaddr.Rule{Listeners: targetaddr.ParseListeners("10.0.0.5:8443")}, "10.0.0.5", 22, http.StatusBadRequest},
		{"fail/wildcard-listener-port", targetaddr.Rule{Listeners: targetaddr.ParseListeners("0.0.0.0:2222"), LocalAddrs: machine}, "10.0.0.5", 2222, http.StatusBadRequest},
		{"ok/wildcard-listener-other-port", targetaddr.Rule{Listeners: targetaddr.ParseListeners("0.0.0.0:2222"), LocalAddrs: machine}, "10.0.0.5", 22, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.SetControl(newControl(h.store.(*raftstoretest.Store), tc.rule))
			b, _ := json.Marshal(api.Server{Project: "web", Name: "db-1", Addr: tc.addr, SSHPort: tc.port})
			if code, body := do(t, http.MethodPut, ts.URL+"/v1/servers/db-1", "Bearer "+testAdminSecret, string(b)); code != tc.want {
				t.Fatalf("HTTP %d %s, want %d", code, strings.TrimSpace(body), tc.want)
			}
		})
	}
}

// testHostKey is an authorized_keys line of a fixed ed25519 key.
func testHostKey(t *testing.T) string {
	t.Helper()
	pub, err := gossh.NewPublicKey(ed25519.NewKeyFromSeed(slices.Repeat([]byte{7}, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(gossh.MarshalAuthorizedKey(pub))
}
