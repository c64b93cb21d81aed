package scim_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/raftstore"
)

const patchOp = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [%s]}`

func patch(ops string) string { return strings.Replace(patchOp, "%s", ops, 1) }

// Only a live provisioning token opens SCIM, and a provisioning token
// opens nothing else.
func TestSCIMTokens(t *testing.T) {
	n := newNode(t)
	ctx, a := context.Background(), control.Actor{Name: "alice"}
	admin, _, err := n.ctl.CreateServiceToken(ctx, a, control.ServiceTokenRequest{Name: "terraform", Scope: raftstore.ServiceRoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	revoked, rec, err := n.ctl.CreateProvisioningToken(ctx, a, "old-okta", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ctl.RevokeProvisioningToken(ctx, a, rec.ID); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token string }{
		{"fail/no-token", ""}, {"fail/admin-token", admin}, {"fail/revoked", revoked}, {"fail/unknown", "rps_nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.doAs(tc.token, "GET", "/scim/v2/Users", "").scimError(t, http.StatusUnauthorized, "")
		})
	}
	t.Run("fail/provisioning-token-on-admin-api", func(t *testing.T) {
		// A valid token whose scope does not reach the route: 403
		// insufficient_scope (httpapi's scope table).
		n.doAs(n.token, "GET", "/v1/projects", "").want(t, http.StatusForbidden)
	})
	t.Run("ok/discovery", func(t *testing.T) {
		for _, p := range []string{"/scim/v2/ServiceProviderConfig", "/scim/v2/ResourceTypes", "/scim/v2/Schemas"} {
			n.do("GET", p, "").want(t, http.StatusOK)
		}
	})
	// An admin token cannot revoke as a provisioning one, nor the reverse.
	if _, err := n.ctl.RevokeProvisioningToken(ctx, a, "st-none"); err == nil {
		t.Fatal("revoked an unknown provisioning token")
	}
}

// Bodies are bounded, filters parsed (never pasted anywhere), names
// checked as sign-in checks them.
func TestSCIMBadRequests(t *testing.T) {
	n := newNode(t)
	n.store.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"deploy"}}}, Now: now})
	big := `{"userName": "x", "displayName": "` + strings.Repeat("a", 1<<20) + `"}`
	n.do("POST", "/scim/v2/Users", big).scimError(t, http.StatusRequestEntityTooLarge, "")
	for _, f := range []string{`userName eq "a\" or 1 eq 1`, `userName eq`, `nosuch eq "x"`, `userName eq "x") or (userName pr`} {
		n.do("GET", "/scim/v2/Users?filter="+q(f), "").scimError(t, http.StatusBadRequest, "invalidFilter")
	}
	n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "root@corp.example"}`).
		scimError(t, http.StatusBadRequest, "invalidValue")
	n.do("POST", "/scim/v2/Users", `{not json`).scimError(t, http.StatusBadRequest, "invalidSyntax")
	n.do("PATCH", "/scim/v2/Users/x", `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "move", "path": "userName", "value": "x"}]}`).
		scimError(t, http.StatusBadRequest, "")
	// A project's shared login is never a person's: deploy becomes deploy-2.
	r := n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "deploy@corp.example"}`).want(t, http.StatusCreated)
	if u := n.user(r.str("id")); u.UnixName != "deploy-2" {
		t.Fatalf("shared login given out: %q", u.UnixName)
	}
	// A group name the ID token's rule refuses.
	n.do("POST", "/scim/v2/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "a:b"}`).scimError(t, http.StatusBadRequest, "invalidValue")
	// Pagination: startIndex and count.
	for _, name := range []string{"p1", "p2", "p3"} {
		n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "`+name+`"}`).want(t, http.StatusCreated)
	}
	r = n.do("GET", "/scim/v2/Users?startIndex=2&count=2", "").want(t, http.StatusOK)
	if r.total() != 4 || len(r.body["Resources"].([]any)) != 2 || r.body["startIndex"] != float64(2) {
		t.Fatalf("page: %s", r.raw)
	}
	// Refusals are audited with their result.
	evs := n.events("scim.request")
	if !slices.ContainsFunc(evs, func(e *raftstore.AuditEvent) bool {
		return e.Fields["status"] == "413" && e.Fields["method"] == "POST" && e.Actor == "scim:okta"
	}) {
		t.Fatal("the refused large body was not audited")
	}
}

// What a provisioning token cannot do: make or unmake administrators, see
// or change people it did not provision, move one person's externalId to
// another record.
func TestSCIMAttacks(t *testing.T) {
	n := newNode(t)
	n.store.MustApply(t,
		&raftstore.UserUpsert{User: raftstore.User{ID: "sub-root", Subject: "sub-root", Login: "ada", Email: "ada@corp.example", EmailVerified: true, UnixName: "ada",
			Groups: []string{adminGroup}, Sources: []string{raftstore.SourceSignIn}}, EnsureGroups: true, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "sub-bob", Subject: "sub-bob", Login: "bob", UnixName: "bob", Sources: []string{raftstore.SourceSignIn}}, Now: now})

	t.Run("fail/unseen-person", func(t *testing.T) {
		n.do("GET", "/scim/v2/Users/sub-bob", "").scimError(t, http.StatusNotFound, "")
		n.do("PATCH", "/scim/v2/Users/sub-bob", patch(`{"op": "replace", "value": {"active": false}}`)).scimError(t, http.StatusNotFound, "")
		n.do("DELETE", "/scim/v2/Users/sub-bob", "").scimError(t, http.StatusNotFound, "")
		if r := n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "bob"`), "").want(t, http.StatusOK); r.total() != 0 {
			t.Fatalf("a person SCIM did not provision is listed: %s", r.raw)
		}
		if u := n.user("sub-bob"); u.Status != raftstore.UserActive {
			t.Fatalf("bob: %+v", u)
		}
	})
	// The IdP links its record of ada by her (verified) e-mail. It cannot push
	// the administrators' group, but it deprovisions an administrator as
	// anyone else: a leaver is a leaver, whatever their groups.
	r := n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@corp.example",
  "emails": [{"value": "ada@corp.example", "primary": true}], "externalId": "ext-ada"}`).want(t, http.StatusCreated)
	if r.str("id") != "sub-root" {
		t.Fatalf("ada's SCIM record is %s, not her sign-in record", r.str("id"))
	}
	t.Run("ok/deactivate-admin", func(t *testing.T) {
		n.do("PATCH", "/scim/v2/Users/sub-root", patch(`{"op": "replace", "value": {"active": false}}`)).want(t, http.StatusOK)
		if u := n.user("sub-root"); u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
			t.Fatalf("admin after SCIM active=false: %+v", u)
		}
		n.do("PATCH", "/scim/v2/Users/sub-root", patch(`{"op": "replace", "value": {"active": true}}`)).want(t, http.StatusOK)
		if u := n.user("sub-root"); u.Status != raftstore.UserActive {
			t.Fatalf("admin after SCIM active=true: %+v", u)
		}
	})
	t.Run("fail/admin-group", func(t *testing.T) {
		n.do("POST", "/scim/v2/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "`+adminGroup+`",
  "members": [{"value": "sub-root"}]}`).scimError(t, http.StatusForbidden, "")
	})
	t.Run("fail/externalId-takeover", func(t *testing.T) {
		n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory", "externalId": "ext-ada"}`).
			scimError(t, http.StatusConflict, "uniqueness")
		n.do("PATCH", "/scim/v2/Users/sub-root", patch(`{"op": "replace", "path": "externalId", "value": "ext-other"}`)).
			scimError(t, http.StatusBadRequest, "mutability")
		// Linking a record by subject that SCIM knows by another externalId.
		n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory", "externalId": "sub-root"}`).
			scimError(t, http.StatusConflict, "uniqueness")
		if u := n.user("sub-root"); u.ExternalID != "ext-ada" || u.Login != "ada@corp.example" {
			t.Fatalf("ada after takeover attempts: %+v", u)
		}
	})
	t.Run("fail/member-not-provisioned", func(t *testing.T) {
		n.do("POST", "/scim/v2/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "ops", "members": [{"value": "sub-bob"}]}`).
			scimError(t, http.StatusBadRequest, "invalidValue")
	})
}

// One person, one record: SCIM links the record sign-in made (Okta's
// externalId is the ID token's sub), and a sign-in adopts the record SCIM
// made before it (by externalId, else by e-mail), keeping its uid.
func TestSCIMAndSignInOneRecord(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	lg := login.NewService(n.store, time.Hour, slog.New(slog.DiscardHandler))
	signedIn, err := lg.Provision(ctx, &login.Identity{Subject: "00u1okta", Login: "carol@corp.example", Email: "carol@corp.example", Groups: []string{"dev"}})
	if err != nil {
		t.Fatal(err)
	}
	r := n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol@corp.example", "externalId": "00u1okta"}`).want(t, http.StatusCreated)
	if u := n.user(r.str("id")); u.ID != "00u1okta" || u.UID != signedIn.UID || !slices.Equal(u.Sources, []string{raftstore.SourceSCIM, raftstore.SourceSignIn}) {
		t.Fatalf("linked: %+v", u)
	}
	// SCIM first, then sign-in: by externalId (the subject), by a verified
	// e-mail where the IdP's externalId is not the sub (Entra ID).
	entra := login.NewService(n.store, time.Hour, slog.New(slog.DiscardHandler))
	entra.SetExternalIDIsSubject(false)
	for _, tc := range []struct {
		name, body, sub, email string
		lg                     *login.Service
	}{
		{"ok/adopt-by-externalId", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dan@corp.example", "externalId": "00u2okta"}`, "00u2okta", "", lg},
		{"ok/adopt-by-email", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "erin@corp.example", "externalId": "entra-7",
  "emails": [{"value": "Erin@corp.example", "primary": true}]}`, "pairwise-sub-erin", "erin@corp.example", entra},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := n.do("POST", "/scim/v2/Users", tc.body).want(t, http.StatusCreated)
			id := r.str("id")
			n.do("POST", "/scim/v2/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g-`+id+`", "members": [{"value": "`+id+`"}]}`).
				want(t, http.StatusCreated)
			scimMade := n.user(id)
			if !strings.HasPrefix(id, "scim-") || !scimMade.PendingSCIM() {
				t.Fatalf("SCIM's record: %+v", scimMade)
			}
			for range 2 {
				u, err := tc.lg.Provision(ctx, &login.Identity{Subject: tc.sub, Login: "x-" + tc.sub, Email: tc.email, EmailVerified: tc.email != "", Groups: []string{"dev"}})
				if err != nil {
					t.Fatal(err)
				}
				if u.ID != id || u.UID != scimMade.UID || u.UnixName != scimMade.UnixName || u.Subject != tc.sub ||
					!slices.Equal(u.Groups, []string{"dev", "g-" + id}) {
					t.Fatalf("sign-in made or found %+v, want SCIM's %+v", u, scimMade)
				}
			}
			_, all, _ := n.store.State().Users(nil)
			if slices.ContainsFunc(all, func(u *raftstore.User) bool { return u.ID == tc.sub }) {
				t.Fatal("a second record for the same person")
			}
		})
	}
	// A deactivated SCIM record is refused at sign-in with the IdP's words.
	r = n.do("POST", "/scim/v2/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "fay", "externalId": "00u3okta", "active": false}`).want(t, http.StatusCreated)
	if _, err := lg.Provision(ctx, &login.Identity{Subject: "00u3okta", Login: "fay"}); err == nil || err.Error() != "your account was deactivated in the identity provider" {
		t.Fatalf("sign-in of a deactivated person: %v", err)
	}
}
