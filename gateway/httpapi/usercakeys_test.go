package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// caCluster records which projects' user CAs the API asked to create.
type caCluster struct {
	Cluster
	mu      sync.Mutex
	created []string
}

func (c *caCluster) EnsureUserCA(_ context.Context, project string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created = append(c.created, project)
	return nil
}

func (c *caCluster) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.created)
}

func authorizedKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// TestUserCAKeys: GET /v1/ca/user/{project} makes a CA (a raft write) only
// for an administrator or a member node; anyone else gets the keys of a CA
// that exists and one answer for a project that does not exist and one
// without a CA yet.
func TestUserCAKeys(t *testing.T) {
	const adminSecret = "admin-secret"
	now := time.Now().UTC()
	dbKey := authorizedKey(t)
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: now},
		&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "ca-db", Kind: raftstore.CAUser, Project: "db", Algorithm: "ed25519",
			PublicKey: dbKey, SealedKey: []byte("sealed"), State: raftstore.CAActive}, Now: now},
		&raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "t1", Name: "admin", Hash: api.HashSecret(adminSecret),
			Role: raftstore.ServiceRoleAdmin}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:8300"}, Now: now},
	)
	pki := newTestPKI(t)
	anonymous := pki.client("", "")
	const needCreds = "an admin token or a cluster node certificate is required"
	cases := []struct {
		name       string
		client     *http.Client
		bearer     string
		project    string
		wantStatus int
		wantErr    string
		wantKeys   []string
		wantCreate bool
	}{
		// Anonymous callers, agents and strangers get one answer whatever
		// the project: known with a CA, known without, unknown.
		{name: "fail/anonymous-existing-ca", client: anonymous, project: "db", wantStatus: http.StatusUnauthorized, wantErr: needCreds},
		{name: "fail/anonymous-unknown-project", client: anonymous, project: "nope", wantStatus: http.StatusUnauthorized, wantErr: needCreds},
		{name: "fail/anonymous-project-without-ca", client: anonymous, project: "web", wantStatus: http.StatusUnauthorized, wantErr: needCreds},
		{name: "fail/agent", client: pki.client(api.RoleAgent, "srv-1"), project: "db", wantStatus: http.StatusUnauthorized, wantErr: needCreds},
		{name: "fail/non-member-node", client: pki.client(api.RoleNode, "n9"), project: "web", wantStatus: http.StatusUnauthorized, wantErr: needCreds},
		{name: "fail/bad-bearer", client: anonymous, bearer: "wrong", project: "web", wantStatus: http.StatusUnauthorized, wantErr: "token is not valid"},
		{name: "ok/admin-creates", client: anonymous, bearer: adminSecret, project: "web", wantStatus: http.StatusOK, wantKeys: []string{}, wantCreate: true},
		{name: "ok/node-creates", client: pki.client(api.RoleNode, "n2"), project: "web", wantStatus: http.StatusOK, wantKeys: []string{}, wantCreate: true},
		{name: "fail/admin-unknown-project", client: anonymous, bearer: adminSecret, project: "nope", wantStatus: http.StatusNotFound, wantErr: `project "nope" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cluster := &caCluster{}
			ts := startAgentAPI(t, pki, f, cluster)
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/ca/user/"+tc.project, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("HTTP %d %s; want %d", resp.StatusCode, raw, tc.wantStatus)
			}
			if tc.wantErr != "" {
				var e api.Error
				if err := json.Unmarshal(raw, &e); err != nil || e.Error != tc.wantErr {
					t.Fatalf("error %q (%v); want %q", raw, err, tc.wantErr)
				}
			} else {
				var keys api.CAKeys
				if err := json.Unmarshal(raw, &keys); err != nil || !slices.Equal(keys.Keys, tc.wantKeys) {
					t.Fatalf("keys %s (%v); want %v", raw, err, tc.wantKeys)
				}
			}
			if got, want := cluster.calls(), map[bool][]string{true: {tc.project}}[tc.wantCreate]; !slices.Equal(got, want) {
				t.Fatalf("user CAs created: %v; want %v", got, want)
			}
		})
	}
}
