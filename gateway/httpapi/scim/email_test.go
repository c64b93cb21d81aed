package scim_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/login"
)

const (
	userSchema  = `"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]`
	groupSchema = `"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]`
)

// An e-mail address is something a person may set in their own IdP
// profile. A sign-in adopts a record SCIM made by e-mail only when the ID
// token says the IdP verified it, and never a record whose externalId
// names another subject (unless the IdP's externalId is not the sub, as
// with Entra ID): mallory, signing in first with dave's address, gets a
// record of her own, not dave's uid and groups; dave's own sign-in still
// adopts his.
func TestSignInAdoptsByVerifiedEmailOnly(t *testing.T) {
	for _, tc := range []struct {
		name       string
		externalID string // of SCIM's dave
		verified   bool   // mallory's email_verified
		entra      bool   // oidc.external_id_is_subject: false
		adopted    bool   // mallory's sign-in takes dave's record
	}{
		{name: "fail/unverified-email", verified: false},
		{name: "fail/unverified-email-entra", externalID: "entra-dave", entra: true},
		{name: "fail/externalId-is-another-subject", externalID: "00u-dave", verified: true},
		{name: "ok/verified-email-no-externalId", verified: true, adopted: true},
		{name: "ok/verified-email-entra", externalID: "entra-dave", verified: true, entra: true, adopted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			ctx := context.Background()
			lg := login.NewService(n.store, time.Hour, slog.New(slog.DiscardHandler))
			lg.SetExternalIDIsSubject(!tc.entra)
			ext := ""
			if tc.externalID != "" {
				ext = `, "externalId": "` + tc.externalID + `"`
			}
			id := n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "dave@corp.example"`+ext+`,
  "emails": [{"value": "dave@corp.example", "primary": true}]}`).want(t, http.StatusCreated).str("id")
			n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "prod", "members": [{"value": "`+id+`"}]}`).want(t, http.StatusCreated)
			dave := n.user(id)

			m, err := lg.Provision(ctx, &login.Identity{Subject: "00u-mallory", Login: "mallory", Email: "dave@corp.example", EmailVerified: tc.verified})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.ID == id; got != tc.adopted {
				t.Fatalf("mallory's sign-in took record %s (SCIM's dave is %s): adopted %v, want %v", m.ID, id, got, tc.adopted)
			}
			if tc.adopted {
				return
			}
			if m.UID == dave.UID || slices.Contains(m.Groups, "prod") || m.UnixName == dave.UnixName {
				t.Fatalf("mallory holds something of dave's: %+v", m)
			}
			if after := n.user(id); after.Subject != "" || !after.PendingSCIM() {
				t.Fatalf("dave's record after mallory's sign-in: %+v", after)
			}
			// Dave's own sign-in: by externalId (his sub), or by his verified e-mail.
			sub := "00u-dave"
			if tc.entra {
				sub = "pairwise-dave"
			}
			d, err := lg.Provision(ctx, &login.Identity{Subject: sub, Login: "dave", Email: "dave@corp.example", EmailVerified: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.externalID == "" || tc.entra || sub == tc.externalID {
				if d.ID != id || !slices.Contains(d.Groups, "prod") {
					t.Fatalf("dave's own sign-in: %+v, want SCIM's record %s", d, id)
				}
			}
		})
	}
}

// SCIM links the record a sign-in made by e-mail only when that sign-in's
// ID token said the IdP verified the address: mallory, who signed in first
// with dave's unverified address, does not become SCIM's dave (his
// externalId, his groups); dave gets a record of his own.
func TestSCIMLinksByVerifiedEmailOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verified bool
	}{
		{"fail/unverified-email", false},
		{"ok/verified-email", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			lg := login.NewService(n.store, time.Hour, slog.New(slog.DiscardHandler))
			m, err := lg.Provision(context.Background(), &login.Identity{Subject: "sub-signed-in", Login: "someone", Email: "dave@corp.example", EmailVerified: tc.verified})
			if err != nil {
				t.Fatal(err)
			}
			id := n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "dave@corp.example", "externalId": "00u-dave",
  "emails": [{"value": "dave@corp.example", "primary": true}]}`).want(t, http.StatusCreated).str("id")
			n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "prod", "members": [{"value": "`+id+`"}]}`).want(t, http.StatusCreated)
			signedIn := n.user(m.ID)
			if tc.verified {
				if id != m.ID || signedIn.ExternalID != "00u-dave" {
					t.Fatalf("SCIM's dave is %s, the verified sign-in's record %+v: want them linked", id, signedIn)
				}
				return
			}
			if id == m.ID || !strings.HasPrefix(id, "scim-") || signedIn.ExternalID != "" || slices.Contains(signedIn.Groups, "prod") {
				t.Fatalf("SCIM's dave %s linked the unverified sign-in's record: %+v", id, signedIn)
			}
		})
	}
}
