package adminshell

import (
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// scim tokens create/ls/revoke: a provisioning token is shown once, stored
// as a hash, listed apart from admin tokens, and revocable.
func TestSCIMTokens(t *testing.T) {
	h := newHarness(t)
	secret := strings.TrimSpace(h.mustRun("scim", "tokens", "create", "okta", "-q"))
	_, tok, err := h.store.State().ServiceTokenByHash(nil, api.HashSecret(secret))
	if err != nil || tok == nil || tok.Role != raftstore.ServiceRoleProvisioning || tok.Name != "okta" {
		t.Fatalf("stored: %+v %v", tok, err)
	}
	if e := h.lastAudit(); e.Type != "service_token.create" || strings.Contains(e.Fields["name"]+e.Fields["service_token"], secret) {
		t.Fatalf("audit %+v", e)
	}
	h.mustRun("service-tokens", "create", "terraform")
	ls := h.mustRun("scim", "tokens", "ls")
	if !strings.Contains(ls, "okta") || strings.Contains(ls, "terraform") || strings.Contains(ls, secret) {
		t.Fatalf("scim tokens ls:\n%s", ls)
	}
	if r := h.run("scim", "tokens", "revoke", "terraform"); r.code == 0 {
		t.Fatalf("revoked an admin token as a provisioning one: %s", r)
	}
	h.mustRun("scim", "tokens", "revoke", "okta")
	if _, tok, _ := h.store.State().ServiceTokenByHash(nil, api.HashSecret(secret)); tok != nil {
		t.Fatal("still stored after revoke")
	}
}

// users show says where the record came from, whether the IdP deactivated
// them, when SCIM last confirmed them and why they are in each group.
func TestUsersShowSources(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftstore.UserSCIMPut{User: raftstore.User{ID: "scim-1", Login: "dora@corp.example", ExternalID: "ext-d", UnixName: "dora"}, Now: h.now})
	h.apply(&raftstore.UserUpsert{User: raftstore.User{ID: "scim-1", Subject: "sub-d", Login: "dora", UnixName: "dora", Groups: []string{"dev", "ops"},
		Sources: []string{raftstore.SourceSignIn}}, EnsureGroups: true, Now: h.now})
	h.apply(&raftstore.SCIMGroupPut{Group: "dev", Linked: true, Add: []string{"scim-1"}, Now: h.now})
	h.apply(&raftstore.SCIMGroupPut{Group: "web", Linked: true, Add: []string{"scim-1"}, Now: h.now})
	h.apply(&raftstore.UserSetStatus{ID: "scim-1", Status: raftstore.UserDisabled, ByIdP: true, Now: h.now})
	out := h.mustRun("users", "show", "dora")
	for _, want := range []string{"SCIM and sign-in", "dev (token+scim)", "ops (token)", "web (scim)", "deactivated by:", "identity provider",
		"scim confirmed:", "ext-d"} {
		if !strings.Contains(out, want) {
			t.Errorf("users show lacks %q:\n%s", want, out)
		}
	}
	j := decodeJSON[map[string]any](t, h.mustRun("users", "show", "dora", "--json"))
	if gs, _ := j["group_sources"].(map[string]any); gs["web"] != "scim" || j["idp_confirmed"].(map[string]any)["scim"] == nil {
		t.Fatalf("json: %v", j)
	}
}
