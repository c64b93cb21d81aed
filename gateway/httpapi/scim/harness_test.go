package scim_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// adminGroup is oidc.admin_group in these tests.
const adminGroup = "rampart-admins"

// node is the real API handler, with SCIM mounted over the real control
// service, on an in-memory store, served over HTTP.
type node struct {
	t     *testing.T
	store *raftstoretest.Store
	ctl   *control.Service
	srv   *httptest.Server
	token string
}

func newNode(t *testing.T) *node {
	t.Helper()
	store := raftstoretest.New(t)
	logger := slog.New(slog.DiscardHandler)
	ctl := control.New(control.Deps{Store: store, Auditor: control.StoreAuditor{Store: store}, Logger: logger, AdminGroup: adminGroup})
	api := httpapi.New(store, nil, logger)
	api.SetControl(ctl)
	if err := api.MountSCIM(ctl, 0); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	n := &node{t: t, store: store, ctl: ctl, srv: srv}
	secret, _, err := ctl.CreateProvisioningToken(context.Background(), control.Actor{Name: "alice"}, "okta", 0)
	if err != nil {
		t.Fatal(err)
	}
	n.token = secret
	return n
}

// reply is an answer: its status and its JSON body.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

// do sends one SCIM request with the provisioning token.
func (n *node) do(method, path, body string) reply {
	n.t.Helper()
	return n.doAs(n.token, method, path, body)
}

func (n *node) doAs(token, method, path, body string) reply {
	n.t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			n.t.Fatalf("%s %s: %d, body not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return r
}

// want fails unless r has status.
func (r reply) want(t *testing.T, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// scimError checks r is a SCIM error body of status (and scimType, if
// given).
func (r reply) scimError(t *testing.T, status int, scimType string) {
	t.Helper()
	r.want(t, status)
	schemas, _ := r.body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" || r.body["status"] != itoa(status) ||
		(scimType != "" && r.body["scimType"] != scimType) {
		t.Fatalf("not a SCIM error %d %q: %s", status, scimType, r.raw)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// total is a list's totalResults.
func (r reply) total() int { f, _ := r.body["totalResults"].(float64); return int(f) }

// first is a list's first resource.
func (r reply) first(t *testing.T) map[string]any {
	t.Helper()
	res, _ := r.body["Resources"].([]any)
	if len(res) == 0 {
		t.Fatalf("no resources: %s", r.raw)
	}
	return res[0].(map[string]any)
}

func q(filter string) string { return url.QueryEscape(filter) }

// user reads a person from the store.
func (n *node) user(id string) *raftstore.User {
	n.t.Helper()
	_, u, err := n.store.State().UserByID(nil, id)
	if err != nil || u == nil {
		n.t.Fatalf("user %s: %v %v", id, u, err)
	}
	return u
}

// events lists the audit events of type typ.
func (n *node) events(typ string) []*raftstore.AuditEvent {
	_, all, err := n.store.State().Audit(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	var out []*raftstore.AuditEvent
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
