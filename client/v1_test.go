package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// The admin calls go to their routes with their method, query and body,
// decode the answer's page, and pass on an error's code.
func TestV1Calls(t *testing.T) {
	var mu sync.Mutex
	var got []string
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+strings.TrimSpace(string(b)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/users/zed":
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(api.Error{Error: `user "zed" not found`, Code: "not_found"})
		case r.URL.Path == "/v1/users":
			_ = json.NewEncoder(w).Encode(api.Page[api.User]{Items: []api.User{{ID: "u-1", Login: "alice"}}, NextCursor: "YQ"})
		case r.URL.Path == "/v1/audit":
			_ = json.NewEncoder(w).Encode(api.Page[api.AuditEvent]{Items: []api.AuditEvent{{Seq: 7, Type: "user.disable"}}})
		case r.URL.Path == "/v1/service-tokens" && r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(api.CreatedServiceToken{Token: "rps_new", ServiceToken: api.ServiceToken{ID: "st-1", Name: "dash", Scope: "read"}})
		case r.URL.Path == "/v1/bindings/revoke":
			_ = json.NewEncoder(w).Encode(api.BindingsRevoked{Revoked: 2})
		case strings.HasPrefix(r.URL.Path, "/v1/users/"):
			_ = json.NewEncoder(w).Encode(api.User{ID: "u-1", Login: "alice", Status: "disabled"})
		default:
			_ = json.NewEncoder(w).Encode(struct{}{})
		}
	})
	c := newClient(t, []string{"https://" + n.addr()}, client.WithRootCAs(roots(n)), client.WithToken("rps_x"))
	ctx := context.Background()
	users, err := c.Users(ctx, client.ListOptions{Limit: 2, Cursor: "YQ", Filter: url.Values{"status": {"active"}}})
	if err != nil || len(users.Items) != 1 || users.Items[0].Login != "alice" || users.NextCursor != "YQ" {
		t.Fatalf("users: %+v %v", users, err)
	}
	if u, err := c.DisableUser(ctx, "alice"); err != nil || u.Status != "disabled" {
		t.Fatalf("disable: %+v %v", u, err)
	}
	_, err = c.User(ctx, "zed")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound || ce.Code != "not_found" {
		t.Fatalf("missing user: %v", err)
	}
	ev, err := c.Audit(ctx, client.ListOptions{Index: 42, Wait: 30 * time.Second, Filter: url.Values{"type": {"admin"}}})
	if err != nil || len(ev.Items) != 1 || ev.Items[0].Seq != 7 {
		t.Fatalf("audit: %+v %v", ev, err)
	}
	st, err := c.CreateServiceToken(ctx, api.ServiceTokenRequest{Name: "dash", Scope: "read"})
	if err != nil || st.Token != "rps_new" || st.Scope != "read" {
		t.Fatalf("create token: %+v %v", st, err)
	}
	if n, err := c.RevokeBindings(ctx, api.BindingsRevoke{UserID: "u-1"}); err != nil || n != 2 {
		t.Fatalf("revoke bindings: %d %v", n, err)
	}
	if err := c.KillSession(ctx, "s 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeServiceToken(ctx, "st-1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"GET /v1/users?cursor=YQ&limit=2&status=active ",
		"POST /v1/users/alice/disable ",
		"GET /v1/users/zed ",
		"GET /v1/audit?index=42&type=admin&wait=30s ",
		`POST /v1/service-tokens {"name":"dash","scope":"read"}`,
		`POST /v1/bindings/revoke {"user_id":"u-1"}`,
		"POST /v1/sessions/s%201/kill ",
		"DELETE /v1/service-tokens/st-1 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
