package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-ssh/rampart/client"
)

// The SCIM calls carry the token, go to /scim/v2/Users, and send what Okta
// sends: a core-schema user, and a path-less PATCH for active.
func TestSCIMCalls(t *testing.T) {
	var mu sync.Mutex
	var got []string
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+strings.TrimSpace(string(b)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/scim+json")
		if r.Method == http.MethodPatch {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_ = json.NewEncoder(w).Encode(client.SCIMUser{ID: "scim-1", UserName: "bob", Active: true})
	})
	c := newClient(t, []string{"https://" + n.addr()}, client.WithRootCAs(roots(n)), client.WithToken("rps_x"))
	ctx := context.Background()
	u, err := c.SCIMCreateUser(ctx, client.SCIMUser{UserName: "bob", Active: true})
	if err != nil || u.ID != "scim-1" {
		t.Fatalf("create: %+v %v", u, err)
	}
	if u, err = c.SCIMUser(ctx, "scim-1"); err != nil || u.UserName != "bob" {
		t.Fatalf("get: %+v %v", u, err)
	}
	if err := c.SCIMSetActive(ctx, "scim-1", false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`POST /scim/v2/Users Bearer rps_x {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob","active":true}`,
		`GET /scim/v2/Users/scim-1 Bearer rps_x `,
		`PATCH /scim/v2/Users/scim-1 Bearer rps_x {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
