package control_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// store is one in-memory replica that both surfaces run on: the FSM, a
// fresh leader, and a raft configuration of two voters.
type store struct{ *raftstoretest.Store }

func (store) TransferLeadership() error { return nil }
func (store) Snapshot() error           { return nil }

const adminSecret = "rps_surfaces-test"

func newStore(t *testing.T) *store {
	t.Helper()
	s := &store{raftstoretest.New(t, raftstoretest.WithMembers(
		raftstore.Member{ID: "n1", RaftAddr: "127.0.0.1:8300"}, raftstore.Member{ID: "n2", RaftAddr: "127.0.0.2:8300"}))}
	now := time.Now()
	for _, c := range []raftstore.Command{
		&raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "st-ci", Name: "ci", Hash: api.HashSecret(adminSecret), Role: raftstore.ServiceRoleAdmin, CreatedBy: "test"}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.DefaultProjectSettings()}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "srv-web-1", Project: "web", Name: "web-1", Addr: "10.0.0.11"}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:8300"}, Now: now},
	} {
		if _, err := s.Apply(context.Background(), c); err != nil {
			t.Fatalf("seed %T: %v", c, err)
		}
	}
	return s
}

// service is the admin service as the node builds it, over s.
func service(s *store) *control.Service {
	return control.New(control.Deps{Store: s, Members: s, Auditor: control.StoreAuditor{Store: s}})
}

func auditLog(t *testing.T, s *store) []*raftstore.AuditEvent {
	t.Helper()
	_, evs, err := s.State().Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// surfaceFields are what a surface adds to every event: where the change
// came from, not what it was.
var surfaceFields = []string{"command", "source", "admin_id", "token_id"}

// The same change made in the admin shell and through the HTTPS API is
// written to the audit log as the same event: one event each, of the same
// type, with the same fields but for where it came from and who made it.
func TestSameChangeSameEvent(t *testing.T) {
	for _, tc := range []struct {
		name         string
		shell        []string
		method, path string
		body         string
		typ          string
	}{
		{"project-create", []string{"projects", "create", "api"}, http.MethodPut, "/v1/projects/api", `{}`, control.EventProjectCreate},
		{"project-set", []string{"projects", "set", "web", "--description", "web tier"}, http.MethodPut, "/v1/projects/web", `{"description":"web tier"}`, control.EventProjectUpdate},
		{"grant", []string{"projects", "grant", "web", "ops", "--role", "admin"}, http.MethodPut, "/v1/projects/web/grants/ops", `{"role":"admin"}`, control.EventGrantCreate},
		{"revoke", []string{"projects", "revoke", "web", "eng"}, http.MethodDelete, "/v1/projects/web/grants/eng", "", control.EventGrantRevoke},
		{"server-delete", []string{"servers", "delete", "web-1", "--yes"}, http.MethodDelete, "/v1/servers/srv-web-1", "", control.EventServerDelete},
		{"node-remove", []string{"cluster", "remove", "n2", "--yes"}, http.MethodDelete, "/v1/cluster/members/n2", "", control.EventNodeRemove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The shell.
			shellStore := newStore(t)
			before := len(auditLog(t, shellStore))
			sh := adminshell.New(adminshell.Deps{Store: shellStore, Control: service(shellStore)})
			var out, errOut bytes.Buffer
			if code := sh.RunCommand(context.Background(), adminshell.Actor{Login: "alice", UserID: "sub-alice", Source: "198.51.100.7:50022"},
				tc.shell, &out, &errOut); code != adminshell.ExitOK {
				t.Fatalf("shell: exit %d\n%s%s", code, out.String(), errOut.String())
			}
			shellEvs := auditLog(t, shellStore)[before:]

			// The API.
			apiStore := newStore(t)
			before = len(auditLog(t, apiStore))
			h := httpapi.New(apiStore, nil, slog.New(slog.DiscardHandler))
			h.SetControl(service(apiStore))
			ts := httptest.NewServer(h)
			defer ts.Close()
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+adminSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("API: HTTP %d %s", resp.StatusCode, body)
			}
			apiEvs := auditLog(t, apiStore)[before:]

			if len(shellEvs) != 1 || len(apiEvs) != 1 {
				t.Fatalf("%d events from the shell, %d from the API; want 1 each", len(shellEvs), len(apiEvs))
			}
			se, ae := shellEvs[0], apiEvs[0]
			if se.Type != tc.typ || ae.Type != tc.typ {
				t.Errorf("types %q (shell) and %q (API), want %q", se.Type, ae.Type, tc.typ)
			}
			if se.Actor != "alice" || ae.Actor != "api:ci" {
				t.Errorf("actors %q (shell) and %q (API), want alice and api:ci", se.Actor, ae.Actor)
			}
			if ae.Fields["token_id"] != "st-ci" || !strings.HasPrefix(ae.Fields["source"], "127.0.0.1:") {
				t.Errorf("API event %v, want the token id and the client's address", ae.Fields)
			}
			change := func(f map[string]string) map[string]string {
				out := map[string]string{}
				for k, v := range f {
					out[k] = v
				}
				for _, k := range surfaceFields {
					delete(out, k)
				}
				return out
			}
			sf, af := change(se.Fields), change(ae.Fields)
			if len(sf) == 0 || len(sf) != len(af) {
				t.Fatalf("fields %v (shell) and %v (API) differ", sf, af)
			}
			for k, v := range sf {
				if af[k] != v {
					t.Errorf("field %s: %q (shell), %q (API)", k, v, af[k])
				}
			}
		})
	}
}
