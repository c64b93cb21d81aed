package scim_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The requests below are written from Okta's "SCIM 2.0 protocol reference"
// (developer.okta.com, okta-scim guides/scim-20): Okta looks a user up by
// userName before creating them, creates with POST, updates with PUT,
// deactivates with a path-less PATCH {"active": false} and never DELETEs a
// user; it pushes groups with POST, and changes their members with PATCH
// add on "members" and remove on members[value eq "…"].
func TestOktaSequence(t *testing.T) {
	n := newNode(t)
	n.store.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.GroupUpsert{Name: "eng", Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now})

	// Lookup before create: nobody yet.
	r := n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "test.user@okta.local"`)+"&startIndex=1&count=100", "").want(t, http.StatusOK)
	if r.total() != 0 {
		t.Fatalf("lookup: %s", r.raw)
	}
	r = n.do("POST", "/scim/v2/Users", `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "test.user@okta.local",
  "name": {"givenName": "Test", "familyName": "User"},
  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
  "displayName": "Test User",
  "locale": "en-US",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "groups": [],
  "password": "1mz050nq",
  "active": true
}`).want(t, http.StatusCreated)
	id := r.str("id")
	u := n.user(id)
	if u.Login != "test.user@okta.local" || u.UnixName != "test_user" || u.ExternalID != "00ujl29u0le5T6Aj10h7" || u.Status != raftstore.UserActive ||
		!slices.Equal(u.Sources, []string{raftstore.SourceSCIM}) || !u.PendingSCIM() {
		t.Fatalf("created: %+v", u)
	}
	uid := u.UID
	if r.body["active"] != true || r.str("externalId") != "00ujl29u0le5T6Aj10h7" {
		t.Fatalf("create response: %s", r.raw)
	}
	// The lookup finds them now; so does GET by id.
	if r := n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "test.user@okta.local"`), "").want(t, http.StatusOK); r.total() != 1 || r.first(t)["id"] != id {
		t.Fatalf("lookup after create: %s", r.raw)
	}
	n.do("GET", "/scim/v2/Users/"+id, "").want(t, http.StatusOK)

	// Profile push: PUT the whole user; a rename keeps the unix name.
	n.do("PUT", "/scim/v2/Users/"+id, `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "`+id+`",
  "userName": "test.renamed@okta.local",
  "name": {"givenName": "Another", "familyName": "User"},
  "emails": [{"primary": true, "value": "test.renamed@okta.local", "type": "work"}],
  "active": true,
  "externalId": "00ujl29u0le5T6Aj10h7"
}`).want(t, http.StatusOK)
	if u := n.user(id); u.Login != "test.renamed@okta.local" || u.Email != "test.renamed@okta.local" || u.UnixName != "test_user" || u.UID != uid {
		t.Fatalf("after PUT: %+v", u)
	}

	// Groups: lookup, push, members add.
	if r := n.do("GET", "/scim/v2/Groups?filter="+q(`displayName eq "eng"`)+"&startIndex=1&count=100", "").want(t, http.StatusOK); r.total() != 0 {
		t.Fatalf("group lookup: %s", r.raw)
	}
	r = n.do("POST", "/scim/v2/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng", "members": []}`).want(t, http.StatusCreated)
	gid := r.str("id")
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "add", "path": "members", "value": [{"value": "`+id+`", "display": "test.renamed@okta.local"}]}]}`).want(t, http.StatusOK)
	u = n.user(id)
	if !slices.Equal(u.Groups, []string{"eng"}) || !slices.Equal(u.SCIMGroups, []string{"eng"}) {
		t.Fatalf("after members add: %+v", u)
	}
	// The SCIM group grants project web exactly as a token group would.
	x, err := access.New(n.store.State(), nil, nil).Explain(u)
	if err != nil || len(x.Grants) != 1 || x.Grants[0].Project != "web" {
		t.Fatalf("grants through SCIM's eng: %+v %v", x, err)
	}
	if r := n.do("GET", "/scim/v2/Groups/"+gid, "").want(t, http.StatusOK); len(r.body["members"].([]any)) != 1 {
		t.Fatalf("group members: %s", r.raw)
	}
	// Okta's group name update sends the id inside the value; the name is
	// what grants refer to, so only the same name is accepted.
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"id": "`+gid+`", "displayName": "eng"}}]}`).want(t, http.StatusOK)
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"id": "`+gid+`", "displayName": "engineering"}}]}`).scimError(t, http.StatusBadRequest, "mutability")

	// Deactivation: a path-less PATCH.
	n.do("PATCH", "/scim/v2/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"active": false}}]}`).want(t, http.StatusOK)
	if u := n.user(id); u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
		t.Fatalf("after deactivation: %+v", u)
	}
	if evs := n.events("user.deactivate"); len(evs) != 1 || evs[0].Actor != "scim:okta" || evs[0].Fields["reason"] != "scim active=false" {
		t.Fatalf("deactivation audit: %+v", evs)
	}
	if r := n.do("GET", "/scim/v2/Users/"+id, "").want(t, http.StatusOK); r.body["active"] != false {
		t.Fatalf("GET after deactivation: %s", r.raw)
	}
	// Re-activation: same uid.
	n.do("PATCH", "/scim/v2/Users/"+id, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"active": true}}]}`).want(t, http.StatusOK)
	if u := n.user(id); u.Status != raftstore.UserActive || u.UID != uid {
		t.Fatalf("after re-activation: %+v", u)
	}

	// Members remove by filter path.
	n.do("PATCH", "/scim/v2/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "remove", "path": "members[value eq \"`+id+`\"]"}]}`).want(t, http.StatusOK)
	if u := n.user(id); len(u.Groups) != 0 {
		t.Fatalf("after members remove: %+v", u)
	}
	// Every request was audited: who, what, result. The reads as
	// scim.request; the changes under their own types.
	reads := n.events("scim.request")
	if len(reads) < 5 || reads[0].Actor != "scim:okta" || reads[0].Fields["method"] != "GET" || reads[0].Fields["status"] != "200" {
		t.Fatalf("request audit: %d events, first %+v", len(reads), reads[0])
	}
	if len(n.events("user.create")) != 1 || len(n.events("group.update")) != 2 || len(n.events("user.update")) != 1 {
		t.Fatal("changes not audited once each")
	}
}
