package scim_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The requests below are written from Microsoft Learn's "Tutorial: Develop
// and plan provisioning for a SCIM endpoint in Microsoft Entra ID" and
// "Known issues and resolutions with SCIM 2.0 protocol compliance of the
// Microsoft Entra user provisioning service": Entra ID looks users up by
// userName and externalId, capitalises ops (Replace, Add, Remove), sends
// active as the string "False", path-less values with dotted keys
// (name.givenName), emails[type eq "work"].value paths, group member
// removal as a value list on "members", reads groups with
// excludedAttributes=members, and DELETEs a user it hard-deletes.
func TestEntraSequence(t *testing.T) {
	n := newNode(t)
	r := n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "Test_User_dfeef4c5@contoso.com"`), "").want(t, http.StatusOK)
	if r.total() != 0 {
		t.Fatalf("lookup: %s", r.raw)
	}
	r = n.do("POST", "/scim/v2/Users", `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
  "userName": "Test_User_dfeef4c5@contoso.com",
  "active": true,
  "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
  "roles": []
}`).want(t, http.StatusCreated)
	id := r.str("id")
	uid := n.user(id).UID
	// Lookup by externalId; active is in the filter response.
	r = n.do("GET", "/scim/v2/Users?filter="+q(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`), "").want(t, http.StatusOK)
	if r.total() != 1 || r.first(t)["id"] != id || r.first(t)["active"] != true {
		t.Fatalf("externalId lookup: %s", r.raw)
	}
	// Capitalised ops, an emails[type eq "work"].value path, a dotted path.
	n.do("PATCH", "/scim/v2/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [
    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
    {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]}`).want(t, http.StatusOK)
	if u := n.user(id); u.Email != "updatedEmail@microsoft.com" {
		t.Fatalf("after email PATCH: %+v", u)
	}
	// Path-less, dotted keys, and active as the string "False".
	n.do("PATCH", "/scim/v2/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Replace", "value": {"name.givenName": "Jane", "userName": "jane@contoso.com", "active": "False"}}]}`).want(t, http.StatusOK)
	u := n.user(id)
	if u.Status != raftstore.UserDisabled || !u.DisabledByIdP || u.Login != "jane@contoso.com" || u.UnixName != "test_user_dfeef4c5" {
		t.Fatalf("after path-less PATCH: %+v", u)
	}
	// active is present in every GET and filter response, false included.
	if r := n.do("GET", "/scim/v2/Users/"+id, "").want(t, http.StatusOK); r.body["active"] != false {
		t.Fatalf("GET disabled: %s", r.raw)
	}
	if r := n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "jane@contoso.com"`), "").want(t, http.StatusOK); r.first(t)["active"] != false {
		t.Fatalf("filter disabled: %s", r.raw)
	}
	n.do("PATCH", "/scim/v2/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Replace", "path": "active", "value": "True"}]}`).want(t, http.StatusOK)
	if u := n.user(id); u.Status != raftstore.UserActive || u.UID != uid {
		t.Fatalf("re-activated: %+v", u)
	}

	// Groups.
	r = n.do("POST", "/scim/v2/Groups", `{"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "ops",
  "meta": {"resourceType": "Group"}, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "members": []}`).want(t, http.StatusCreated)
	gid := r.str("id")
	n.do("GET", "/scim/v2/Groups/"+gid+"?excludedAttributes=members", "").want(t, http.StatusOK)
	if r := n.do("GET", "/scim/v2/Groups?excludedAttributes=members&filter="+q(`displayName eq "ops"`), "").want(t, http.StatusOK); r.total() != 1 {
		t.Fatalf("group filter: %s", r.raw)
	}
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Add", "path": "members", "value": [{"value": "`+id+`"}]}]}`).want(t, http.StatusOK)
	if u := n.user(id); !slices.Equal(u.Groups, []string{"ops"}) {
		t.Fatalf("after Add: %+v", u)
	}
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "`+id+`"}]}]}`).want(t, http.StatusOK)
	if u := n.user(id); len(u.Groups) != 0 {
		t.Fatalf("after Remove: %+v", u)
	}
	// Group delete: it leaves SCIM's view, the group (and its gid) stays.
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Add", "path": "members", "value": [{"value": "`+id+`"}]}]}`).want(t, http.StatusOK)
	n.do("DELETE", "/scim/v2/Groups/"+gid, "").want(t, http.StatusNoContent)
	n.do("GET", "/scim/v2/Groups/"+gid, "").scimError(t, http.StatusNotFound, "")
	if u := n.user(id); len(u.Groups) != 0 {
		t.Fatalf("after group DELETE: %+v", u)
	}

	// Hard delete: deactivated, out of SCIM's view; created again (same
	// externalId), the same record comes back with the same uid.
	n.do("DELETE", "/scim/v2/Users/"+id, "").want(t, http.StatusNoContent)
	n.do("GET", "/scim/v2/Users/"+id, "").scimError(t, http.StatusNotFound, "")
	if u := n.user(id); u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
		t.Fatalf("after DELETE: %+v", u)
	}
	r = n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "userName": "jane@contoso.com", "active": true}`).want(t, http.StatusCreated)
	if r.str("id") != id {
		t.Fatalf("re-created as %s, want %s", r.str("id"), id)
	}
	if u := n.user(id); u.Status != raftstore.UserActive || u.UID != uid {
		t.Fatalf("re-created: %+v", u)
	}
}
