package control

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Every change, on a fresh store: a valid one takes effect and is audited
// exactly once, with the actor's fields and its own; an invalid one is a
// fault error with the status and message the surfaces show, changes
// nothing and is not audited.
func TestChanges(t *testing.T) {
	ctx := context.Background()
	a := testActor
	tests := []struct {
		name   string
		do     func(h *harness) error
		status int    // 0: the change is made
		msg    string // in the error, or nothing
		typ    string
		fields map[string]string
		check  func(t *testing.T, h *harness)
	}{
		{name: "ok/project-create", do: func(h *harness) error {
			_, err := h.svc.CreateProject(ctx, a, raftstore.Project{Name: "api", Settings: raftstore.DefaultProjectSettings()})
			return err
		}, typ: EventProjectCreate, fields: map[string]string{"project": "api"},
			check: func(t *testing.T, h *harness) { wantProject(t, h, "api") }},
		{name: "fail/project-create-exists", do: func(h *harness) error {
			_, err := h.svc.CreateProject(ctx, a, raftstore.Project{Name: "web"})
			return err
		}, status: http.StatusConflict, msg: "project web already exists: conflict (change it with projects set)"},
		{name: "fail/project-create-bad-name", do: func(h *harness) error {
			_, err := h.svc.CreateProject(ctx, a, raftstore.Project{Name: "Not A Name"})
			return err
		}, status: http.StatusBadRequest, msg: "invalid"},
		{name: "fail/project-create-cert-ttl", do: func(h *harness) error {
			_, err := h.svc.CreateProject(ctx, a, raftstore.Project{Name: "api", Settings: raftstore.ProjectSettings{CertTTL: 48 * time.Hour}})
			return err
		}, status: http.StatusBadRequest, msg: "cert"},
		{name: "ok/project-update", do: func(h *harness) error {
			_, err := h.svc.UpdateProject(ctx, a, "web", func(p *raftstore.Project) error {
				p.Settings.MaxSessionDuration = 8 * time.Hour
				p.Settings.SharedLogins = append(p.Settings.SharedLogins, "deploy")
				return nil
			})
			return err
		}, typ: EventProjectUpdate, fields: map[string]string{"project": "web"},
			check: func(t *testing.T, h *harness) {
				if p := wantProject(t, h, "web"); p.Settings.MaxSessionDuration != 8*time.Hour || p.Description != "web tier" ||
					!slices.Equal(p.Settings.SharedLogins, []string{"deploy"}) {
					t.Errorf("project %+v", p)
				}
			}},
		{name: "fail/project-update-missing", do: func(h *harness) error {
			_, err := h.svc.UpdateProject(ctx, a, "nope", func(*raftstore.Project) error { return nil })
			return err
		}, status: http.StatusNotFound, msg: `project "nope": not found`},
		{name: "fail/project-update-edit-refuses", do: func(h *harness) error {
			_, err := h.svc.UpdateProject(ctx, a, "web", func(*raftstore.Project) error { return errRefused })
			return err
		}, msg: errRefused.Error()},
		{name: "ok/project-put-new", do: func(h *harness) error {
			_, err := h.svc.PutProject(ctx, a, "api", func(cur *raftstore.Project) (raftstore.Project, error) {
				if cur != nil {
					t.Errorf("cur %+v for a new project", cur)
				}
				return raftstore.Project{Settings: raftstore.DefaultProjectSettings()}, nil
			})
			return err
		}, typ: EventProjectCreate, fields: map[string]string{"project": "api"},
			check: func(t *testing.T, h *harness) { wantProject(t, h, "api") }},
		{name: "ok/project-put-existing", do: func(h *harness) error {
			_, err := h.svc.PutProject(ctx, a, "web", func(cur *raftstore.Project) (raftstore.Project, error) {
				if cur == nil || cur.Description != "web tier" {
					t.Errorf("cur %+v", cur)
				}
				return raftstore.Project{Description: "new"}, nil
			})
			return err
		}, typ: EventProjectUpdate, fields: map[string]string{"project": "web"},
			check: func(t *testing.T, h *harness) {
				if p := wantProject(t, h, "web"); p.Description != "new" {
					t.Errorf("project %+v", p)
				}
			}},
		{name: "ok/project-delete", do: func(h *harness) error { return h.svc.DeleteProject(ctx, a, "empty", nil) },
			typ: EventProjectDelete, fields: map[string]string{"project": "empty"},
			check: func(t *testing.T, h *harness) {
				if _, p, _ := h.store.State().ProjectByName(nil, "empty"); p != nil {
					t.Error("project still there")
				}
			}},
		{name: "fail/project-delete-missing", do: func(h *harness) error { return h.svc.DeleteProject(ctx, a, "nope", nil) },
			status: http.StatusNotFound, msg: `project "nope": not found`},
		{name: "fail/project-delete-has-servers", do: func(h *harness) error { return h.svc.DeleteProject(ctx, a, "web", nil) },
			status: http.StatusConflict, msg: "server"},
		{name: "fail/project-delete-not-confirmed", do: func(h *harness) error {
			return h.svc.DeleteProject(ctx, a, "empty", func(what string) error {
				if what != "delete project empty with its grants and enrollment tokens" {
					t.Errorf("asked %q", what)
				}
				return errRefused
			})
		}, msg: errRefused.Error(), check: func(t *testing.T, h *harness) { wantProject(t, h, "empty") }},
		{name: "ok/grant", do: func(h *harness) error {
			_, err := h.svc.Grant(ctx, a, raftstore.Grant{Project: "web", Group: "ops", Role: raftstore.GrantAdmin, Sudo: []string{"restart-nginx"}})
			return err
		}, typ: EventGrantCreate, fields: map[string]string{"project": "web", "group": "ops", "role": "admin", "sudo": "restart-nginx"}},
		{name: "ok/grant-default-role", do: func(h *harness) error {
			g, err := h.svc.Grant(ctx, a, raftstore.Grant{Project: "web", Group: "ops"})
			if err == nil && g.Role != raftstore.GrantUser {
				t.Errorf("grant %+v", g)
			}
			return err
		}, typ: EventGrantCreate, fields: map[string]string{"project": "web", "group": "ops", "role": "user", "sudo": ""}},
		{name: "fail/grant-role", do: func(h *harness) error {
			_, err := h.svc.Grant(ctx, a, raftstore.Grant{Project: "web", Group: "ops", Role: "root"})
			return err
		}, status: http.StatusBadRequest, msg: `role "root" is not user or admin`},
		{name: "fail/grant-project", do: func(h *harness) error {
			_, err := h.svc.Grant(ctx, a, raftstore.Grant{Project: "nope", Group: "ops"})
			return err
		}, status: http.StatusNotFound, msg: `project "nope": not found`},
		{name: "fail/grant-entitlement", do: func(h *harness) error {
			_, err := h.svc.Grant(ctx, a, raftstore.Grant{Project: "web", Group: "ops", Sudo: []string{"nope"}})
			return err
		}, status: http.StatusNotFound, msg: "entitlement nope: not found"},
		{name: "ok/revoke-grant", do: func(h *harness) error { return h.svc.RevokeGrant(ctx, a, "web", "eng") },
			typ: EventGrantRevoke, fields: map[string]string{"project": "web", "group": "eng"}},
		{name: "fail/revoke-grant-missing", do: func(h *harness) error { return h.svc.RevokeGrant(ctx, a, "web", "ops") },
			status: http.StatusNotFound, msg: "group ops has no grant in project web: not found"},
		{name: "ok/user-disable", do: func(h *harness) error {
			_, err := h.svc.SetUserStatus(ctx, a, "sub-bob", raftstore.UserDisabled)
			return err
		}, typ: EventUserDisable, fields: map[string]string{"user": "bob", "user_id": "sub-bob"},
			check: func(t *testing.T, h *harness) { wantUserStatus(t, h, "sub-bob", raftstore.UserDisabled) }},
		{name: "ok/user-enable", do: func(h *harness) error {
			_, err := h.svc.SetUserStatus(ctx, a, "sub-carol", raftstore.UserActive)
			return err
		}, typ: EventUserEnable, fields: map[string]string{"user": "carol", "user_id": "sub-carol"},
			check: func(t *testing.T, h *harness) { wantUserStatus(t, h, "sub-carol", raftstore.UserActive) }},
		{name: "fail/user-enable-deleted", do: func(h *harness) error {
			_, err := h.svc.SetUserStatus(ctx, a, "sub-dave", raftstore.UserActive)
			return err
		}, status: http.StatusConflict, msg: "user dave is deleted; a deleted user cannot be enabled"},
		{name: "fail/user-status-deleted", do: func(h *harness) error {
			_, err := h.svc.SetUserStatus(ctx, a, "sub-bob", raftstore.UserDeleted)
			return err
		}, status: http.StatusBadRequest, msg: `status "deleted" is not disabled or active`},
		{name: "fail/user-missing", do: func(h *harness) error {
			_, err := h.svc.SetUserStatus(ctx, a, "sub-nobody", raftstore.UserDisabled)
			return err
		}, status: http.StatusNotFound, msg: `user "sub-nobody": not found`},
		{name: "ok/user-delete", do: func(h *harness) error {
			n, err := h.svc.DeleteUser(ctx, a, "sub-bob", nil)
			if err == nil && n != 1 {
				t.Errorf("%d bindings revoked, want 1", n)
			}
			return err
		}, typ: EventUserDelete, fields: map[string]string{"user": "bob", "user_id": "sub-bob", "bindings_revoked": "1"},
			check: func(t *testing.T, h *harness) {
				wantUserStatus(t, h, "sub-bob", raftstore.UserDeleted)
				wantBindings(t, h, 0)
			}},
		{name: "ok/bindings-fingerprint", do: func(h *harness) error {
			_, what, err := h.svc.RevokeBindings(ctx, a, Bindings{Fingerprint: h.bobKey}, nil)
			if err == nil && what != "binding "+h.bobKey {
				t.Errorf("what %q", what)
			}
			return err
		}, typ: EventBindingRevoke, fields: map[string]string{"user_id": "sub-bob", "revoked": "1"},
			check: func(t *testing.T, h *harness) {
				wantBindings(t, h, 0)
				if evs := h.audit.all(); len(evs) != 1 || evs[0].Fields["fingerprint"] != h.bobKey {
					t.Errorf("audit %+v, want the fingerprint %s", evs, h.bobKey)
				}
			}},
		{name: "ok/bindings-user", do: func(h *harness) error {
			_, _, err := h.svc.RevokeBindings(ctx, a, Bindings{UserID: "sub-bob"}, nil)
			return err
		}, typ: EventBindingRevoke, fields: map[string]string{"user": "bob", "user_id": "sub-bob", "revoked": "1"}},
		{name: "ok/bindings-all", do: func(h *harness) error {
			_, _, err := h.svc.RevokeBindings(ctx, a, Bindings{All: true}, func(what string) error {
				if what != "revoke every device binding of every user" {
					t.Errorf("asked %q", what)
				}
				return nil
			})
			return err
		}, typ: EventBindingRevoke, fields: map[string]string{"scope": "all", "revoked": "1"}},
		{name: "fail/bindings-two-selectors", do: func(h *harness) error {
			_, _, err := h.svc.RevokeBindings(ctx, a, Bindings{UserID: "sub-bob", All: true}, nil)
			return err
		}, status: http.StatusBadRequest, msg: "exactly one"},
		{name: "fail/bindings-unknown", do: func(h *harness) error {
			_, _, err := h.svc.RevokeBindings(ctx, a, Bindings{Fingerprint: "SHA256:nope"}, nil)
			return err
		}, status: http.StatusNotFound, msg: `binding "SHA256:nope": not found`},
		{name: "ok/session-kill", do: func(h *harness) error {
			return h.svc.KillSession(ctx, a, "sess-live", func(what string) error {
				if what != "end session sess-live of bob" {
					t.Errorf("asked %q", what)
				}
				return nil
			})
		}, typ: EventSessionKill, fields: map[string]string{"session": "sess-live"},
			check: func(t *testing.T, h *harness) {
				_, s, _ := h.store.State().SessionByID(nil, "sess-live")
				if s.Status != raftstore.SessionClosed || s.EndReason != "ended by administrator alice" {
					t.Errorf("session %+v", s)
				}
			}},
		{name: "fail/session-kill-ended", do: func(h *harness) error { return h.svc.KillSession(ctx, a, "sess-done", nil) },
			status: http.StatusConflict, msg: "session sess-done has already ended"},
		{name: "fail/session-kill-missing", do: func(h *harness) error { return h.svc.KillSession(ctx, a, "sess-nope", nil) },
			status: http.StatusNotFound, msg: `session "sess-nope": not found`},
		{name: "ok/server-register", do: func(h *harness) error {
			_, err := h.svc.RegisterServer(ctx, a, raftstore.Server{ID: "db-1", Project: "web", Name: "db-1", Addr: "10.0.0.21"})
			return err
		}, typ: EventServerRegister, fields: map[string]string{"server": "db-1", "server_id": "db-1", "project": "web", "addr": "10.0.0.21"},
			check: func(t *testing.T, h *harness) {
				if _, s, _ := h.store.State().ServerByID(nil, "db-1"); s == nil || s.SSHPort != raftstore.DefaultSSHPort || s.EnrollMethod != raftstore.EnrollManual {
					t.Errorf("server %+v", s)
				}
			}},
		{name: "fail/server-register-loopback", do: func(h *harness) error {
			_, err := h.svc.RegisterServer(ctx, a, raftstore.Server{ID: "db-1", Project: "web", Name: "db-1", Addr: "127.0.0.5"})
			return err
		}, status: http.StatusBadRequest, msg: "cannot register server db-1 at 127.0.0.5 port 22"},
		{name: "fail/server-register-project", do: func(h *harness) error {
			_, err := h.svc.RegisterServer(ctx, a, raftstore.Server{ID: "db-1", Project: "nope", Name: "db-1", Addr: "10.0.0.21"})
			return err
		}, status: http.StatusNotFound},
		{name: "ok/server-delete", do: func(h *harness) error {
			_, err := h.svc.DeleteServer(ctx, a, "srv-web-1", func(what string) error {
				if what != "delete server web-1 (srv-web-1) from project web" {
					t.Errorf("asked %q", what)
				}
				return nil
			})
			return err
		}, typ: EventServerDelete, fields: map[string]string{"server": "web-1", "server_id": "srv-web-1", "project": "web"}},
		{name: "fail/server-delete-missing", do: func(h *harness) error {
			_, err := h.svc.DeleteServer(ctx, a, "nope", nil)
			return err
		}, status: http.StatusNotFound, msg: `server "nope": not found`},
		{name: "ok/server-label", do: func(h *harness) error {
			_, err := h.svc.LabelServer(ctx, a, "srv-web-1", []LabelEdit{{Key: "tier", Value: "frontend"}, {Key: "env", Remove: true}})
			return err
		}, typ: EventServerLabel, fields: map[string]string{"server": "web-1", "server_id": "srv-web-1", "labels": "tier=frontend"}},
		{name: "fail/server-label-empty-key", do: func(h *harness) error {
			_, err := h.svc.LabelServer(ctx, a, "srv-web-1", []LabelEdit{{Key: "", Value: "x"}})
			return err
		}, status: http.StatusBadRequest, msg: "a label key is empty"},
		{name: "ok/token-create", do: func(h *harness) error {
			tok, rec, err := h.svc.CreateToken(ctx, a, TokenRequest{Kind: api.TokenEnroll, Project: "web", TTL: time.Hour, Uses: 2})
			if err == nil && (rec.Hash != api.HashSecret(tok.Secret) || rec.UsesLeft != 2 || rec.CreatedBy != "alice" || !rec.ExpiresAt.Equal(testNow.Add(time.Hour))) {
				t.Errorf("token %+v record %+v", tok, rec)
			}
			return err
		}, typ: EventTokenCreate, fields: map[string]string{"project": "web", "uses": "2", "expires": "2026-03-01T13:00:00Z"}},
		{name: "ok/join-token-create", do: func(h *harness) error {
			_, rec, err := h.svc.CreateToken(ctx, a, TokenRequest{Kind: api.TokenJoin})
			if err == nil && (rec.Kind != raftstore.TokenJoin || rec.UsesLeft != raftstore.UnlimitedUses) {
				t.Errorf("record %+v", rec)
			}
			return err
		}, typ: EventTokenCreate, fields: map[string]string{"kind": "join", "uses": "unlimited", "expires": "-"}},
		{name: "fail/token-create-negative-ttl", do: func(h *harness) error {
			_, _, err := h.svc.CreateToken(ctx, a, TokenRequest{Kind: api.TokenEnroll, Project: "web", TTL: -time.Hour})
			return err
		}, status: http.StatusBadRequest, msg: "ttl -1h0m0s is negative"},
		{name: "fail/token-create-project", do: func(h *harness) error {
			_, _, err := h.svc.CreateToken(ctx, a, TokenRequest{Kind: api.TokenEnroll, Project: "nope"})
			return err
		}, status: http.StatusNotFound, msg: `project "nope": not found`},
		{name: "fail/token-create-join-with-project", do: func(h *harness) error {
			_, _, err := h.svc.CreateToken(ctx, a, TokenRequest{Kind: api.TokenJoin, Project: "web"})
			return err
		}, status: http.StatusBadRequest, msg: "not a project"},
		{name: "ok/token-revoke", do: func(h *harness) error { return h.svc.RevokeToken(ctx, a, strings.Repeat("1a", 32)) },
			typ: EventTokenRevoke, fields: map[string]string{"token": strings.Repeat("1a", 32)}},
		{name: "fail/token-revoke-missing", do: func(h *harness) error { return h.svc.RevokeToken(ctx, a, strings.Repeat("ff", 32)) },
			status: http.StatusNotFound, msg: "not found"},
		{name: "ok/service-token-create", do: func(h *harness) error {
			secret, rec, err := h.svc.CreateServiceToken(ctx, a, ServiceTokenRequest{Name: "deploy", Scope: raftstore.ServiceRoleAdmin})
			if err == nil && (!strings.HasPrefix(secret, ServiceTokenPrefix) || rec.Hash != api.HashSecret(secret) || rec.Role != raftstore.ServiceRoleAdmin) {
				t.Errorf("secret %q record %+v", secret, rec)
			}
			return err
		}, typ: EventServiceTokenCreate, fields: map[string]string{"name": "deploy", "scope": "admin", "expires": "-"}},
		{name: "ok/service-token-create-read", do: func(h *harness) error {
			_, rec, err := h.svc.CreateServiceToken(ctx, a, ServiceTokenRequest{Name: "dash", Scope: raftstore.ServiceRoleRead, TTL: time.Hour})
			if err == nil && (rec.Role != raftstore.ServiceRoleRead || rec.CreatedBy != a.Name || rec.ExpiresAt.IsZero()) {
				t.Errorf("record %+v", rec)
			}
			return err
		}, typ: EventServiceTokenCreate, fields: map[string]string{"name": "dash", "scope": "read"}},
		{name: "fail/service-token-unknown-scope", do: func(h *harness) error {
			_, _, err := h.svc.CreateServiceToken(ctx, a, ServiceTokenRequest{Name: "deploy", Scope: "root"})
			return err
		}, status: http.StatusBadRequest, msg: `scope "root" is not one of read, admin, provisioning, auditor`},
		{name: "fail/service-token-no-name", do: func(h *harness) error {
			_, _, err := h.svc.CreateServiceToken(ctx, a, ServiceTokenRequest{Scope: "read"})
			return err
		}, status: http.StatusBadRequest, msg: "needs a name"},
		{name: "fail/service-token-negative-ttl", do: func(h *harness) error {
			_, _, err := h.svc.CreateServiceToken(ctx, a, ServiceTokenRequest{Name: "deploy", Scope: "admin", TTL: -time.Minute})
			return err
		}, status: http.StatusBadRequest, msg: "is negative"},
		{name: "ok/service-token-revoke", do: func(h *harness) error {
			_, err := h.svc.RevokeServiceToken(ctx, a, "st-ci")
			return err
		}, typ: EventServiceTokenRevoke, fields: map[string]string{"service_token": "st-ci", "name": "ci"}},
		{name: "fail/service-token-revoke-missing", do: func(h *harness) error {
			_, err := h.svc.RevokeServiceToken(ctx, a, "st-nope")
			return err
		}, status: http.StatusNotFound, msg: `service token "st-nope": not found`},
		{name: "ok/entitlement-create", do: func(h *harness) error {
			_, err := h.svc.CreateEntitlement(ctx, a, raftstore.Entitlement{Name: "deploy", RunAs: raftstore.DefaultRunAs,
				Commands: []raftstore.SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "app"}}}})
			return err
		}, typ: EventEntitlementCreate, fields: map[string]string{"entitlement": "deploy"}},
		{name: "fail/entitlement-create-exists", do: func(h *harness) error {
			_, err := h.svc.CreateEntitlement(ctx, a, raftstore.Entitlement{Name: "unused", Commands: []raftstore.SudoCommand{{Path: "/usr/bin/true"}}})
			return err
		}, status: http.StatusConflict, msg: "entitlement unused already exists: conflict (delete it first)"},
		{name: "fail/entitlement-create-no-commands", do: func(h *harness) error {
			_, err := h.svc.CreateEntitlement(ctx, a, raftstore.Entitlement{Name: "deploy"})
			return err
		}, status: http.StatusBadRequest, msg: "give at least one command"},
		{name: "fail/entitlement-create-relative-path", do: func(h *harness) error {
			_, err := h.svc.CreateEntitlement(ctx, a, raftstore.Entitlement{Name: "deploy", Commands: []raftstore.SudoCommand{{Path: "systemctl"}}})
			return err
		}, status: http.StatusBadRequest},
		{name: "ok/entitlement-delete", do: func(h *harness) error { return h.svc.DeleteEntitlement(ctx, a, "unused", nil) },
			typ: EventEntitlementDelete, fields: map[string]string{"entitlement": "unused"}},
		{name: "fail/entitlement-delete-in-use", do: func(h *harness) error { return h.svc.DeleteEntitlement(ctx, a, "restart-nginx", nil) },
			status: http.StatusConflict},
		{name: "fail/entitlement-delete-missing", do: func(h *harness) error { return h.svc.DeleteEntitlement(ctx, a, "nope", nil) },
			status: http.StatusNotFound, msg: `entitlement "nope": not found`},
		{name: "ok/node-remove-member", do: func(h *harness) error {
			return h.svc.RemoveNode(ctx, a, "n2", func(what string) error {
				if what != "remove node n2 (127.0.0.2:8300) from the cluster" {
					t.Errorf("asked %q", what)
				}
				return nil
			})
		}, typ: EventNodeRemove, fields: map[string]string{"node": "n2", "raft_addr": "127.0.0.2:8300"},
			check: func(t *testing.T, h *harness) {
				if calls := h.store.MembershipCalls(); !slices.Equal(calls, []string{"remove n2"}) {
					t.Errorf("membership calls %q", calls)
				}
			}},
		{name: "ok/node-remove-record-only", do: func(h *harness) error { return h.svc.RemoveNode(ctx, a, "n3", nil) },
			typ: EventNodeRemove, fields: map[string]string{"node": "n3", "raft_addr": "127.0.0.3:8300"},
			check: func(t *testing.T, h *harness) {
				if _, n, _ := h.store.State().NodeByID(nil, "n3"); n != nil {
					t.Error("node record still there")
				}
			}},
		{name: "ok/node-remove-self-says-so", do: func(h *harness) error {
			return h.svc.RemoveNode(ctx, a, "n1", func(what string) error {
				if !strings.HasSuffix(what, "; it is the node you are connected to") {
					t.Errorf("asked %q", what)
				}
				return nil
			})
		}, typ: EventNodeRemove, fields: map[string]string{"node": "n1"}},
		{name: "fail/node-remove-unknown", do: func(h *harness) error { return h.svc.RemoveNode(ctx, a, "n9", nil) },
			status: http.StatusNotFound, msg: `node "n9" is not a member of this cluster`,
			check: func(t *testing.T, h *harness) {
				if calls := h.store.MembershipCalls(); len(calls) != 0 {
					t.Errorf("membership calls %q", calls)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			err := tc.do(h)
			evs := h.audit.all()
			switch {
			case tc.typ == "" && err == nil:
				t.Fatal("the change was made; want it refused")
			case tc.typ != "" && err != nil:
				t.Fatalf("refused: %v", err)
			case err != nil:
				if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q does not say %q", err, tc.msg)
				}
				status, ok := fault.StatusOf(err)
				if tc.status != 0 && (!ok || status != tc.status) {
					t.Errorf("error %q: status %d (fault %v), want %d", err, status, ok, tc.status)
				}
				if tc.status == 0 && !errors.Is(err, errRefused) {
					t.Errorf("error %v, want the surface's own error as it is", err)
				}
				if len(evs) != 0 {
					t.Errorf("a refused change was audited: %+v", evs)
				}
			default:
				if len(evs) != 1 {
					t.Fatalf("%d audit events, want 1: %+v", len(evs), evs)
				}
				e := evs[0]
				if e.Type != tc.typ || e.Actor != "alice" || e.Fields["source"] != testActor.Fields["source"] {
					t.Errorf("audit event %+v, want type %s by alice with the actor's source", e, tc.typ)
				}
				for k, v := range tc.fields {
					if e.Fields[k] != v {
						t.Errorf("audit field %s = %q, want %q (%v)", k, e.Fields[k], v, e.Fields)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

// A change whose audit event cannot be written is reported as failed, with
// the store's error kept.
func TestUnauditedChangeFails(t *testing.T) {
	h := newHarness(t)
	h.audit.fail = raftstore.ErrNoLeader
	_, err := h.svc.SetUserStatus(context.Background(), testActor, "sub-bob", raftstore.UserDisabled)
	if err == nil || !strings.Contains(err.Error(), "the change was made, but its audit event could not be written") || !errors.Is(err, raftstore.ErrNoLeader) {
		t.Fatalf("err = %v", err)
	}
	wantUserStatus(t, h, "sub-bob", raftstore.UserDisabled)
}

// A change whose caller hangs up as it is made is still audited: the event
// is written under a context of its own.
func TestChangeAuditedAfterCallerLeft(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	svc := New(Deps{Store: cancelOnApply{Store: h.store, cancel: cancel}, Auditor: h.audit, Members: h.store,
		Cluster: fixedCluster{}, Now: func() time.Time { return testNow }})
	if _, err := svc.SetUserStatus(ctx, testActor, "sub-bob", raftstore.UserDisabled); err != nil {
		t.Fatal(err)
	}
	if evs := h.audit.all(); len(evs) != 1 || evs[0].Type != EventUserDisable {
		t.Fatalf("audit %+v", evs)
	}
}

// cancelOnApply ends the caller's context as soon as a change is applied.
type cancelOnApply struct {
	Store
	cancel context.CancelFunc
}

func (s cancelOnApply) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	res, err := s.Store.Apply(ctx, cmd)
	s.cancel()
	return res, err
}

// Without a cluster address or CA pin, or without raft membership, the
// changes that need them are refused before anything is written.
func TestMissingDeps(t *testing.T) {
	st, rec := newMemStore(t), &recorder{}
	svc := New(Deps{Store: st, Auditor: rec})
	_, _, err := svc.CreateToken(context.Background(), testActor, TokenRequest{Kind: api.TokenJoin})
	if status, _ := fault.StatusOf(err); status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "cannot create tokens") {
		t.Errorf("token without a cluster: %v", err)
	}
	err = svc.RemoveNode(context.Background(), testActor, "n2", nil)
	if status, _ := fault.StatusOf(err); status != http.StatusServiceUnavailable {
		t.Errorf("removal without membership: %v", err)
	}
	if len(rec.all()) != 0 {
		t.Errorf("audited %+v", rec.all())
	}
}

// StoreAuditor writes the event through the store at once, stamped by its
// clock.
func TestStoreAuditor(t *testing.T) {
	st := newMemStore(t)
	a := StoreAuditor{Store: st, Now: func() time.Time { return testNow }}
	if err := a.Record(context.Background(), EventProjectCreate, "alice", map[string]string{"project": "api"}); err != nil {
		t.Fatal(err)
	}
	_, evs, err := st.State().Audit(nil)
	if err != nil || len(evs) != 1 || evs[0].Type != EventProjectCreate || evs[0].Actor != "alice" || !evs[0].Time.Equal(testNow) ||
		evs[0].Fields["project"] != "api" {
		t.Fatalf("events %+v (%v)", evs, err)
	}
}

func wantProject(t *testing.T, h *harness, name string) *raftstore.Project {
	t.Helper()
	_, p, _ := h.store.State().ProjectByName(nil, name)
	if p == nil {
		t.Fatalf("no project %s", name)
	}
	return p
}

func wantUserStatus(t *testing.T, h *harness, id string, status raftstore.UserStatus) {
	t.Helper()
	if _, u, _ := h.store.State().UserByID(nil, id); u == nil || u.Status != status {
		t.Errorf("user %s: %+v, want %s", id, u, status)
	}
}

func wantBindings(t *testing.T, h *harness, n int) {
	t.Helper()
	if _, bs, _ := h.store.State().Bindings(nil); len(bs) != n {
		t.Errorf("%d bindings, want %d", len(bs), n)
	}
}
