package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The access request routes, driven with the typed client over TLS: who may
// read and decide, a token deciding as its owner (never on the owner's own
// request; the owner and their token are one approver), refusals, pages,
// and one audit event per decision.

// owned tokens of the test, by name: scope and owner (user id).
var ownedTokens = map[string][2]string{
	"alice-approver": {raftstore.ServiceRoleApprover, "u-alice"},
	"bob-approver":   {raftstore.ServiceRoleApprover, "u-bob"},
	"bob-admin":      {raftstore.ServiceRoleAdmin, "u-bob"},
	"carol-approver": {raftstore.ServiceRoleApprover, "u-carol"},
	"dave-approver":  {raftstore.ServiceRoleApprover, "u-dave"},
}

type requestsAPI struct {
	*v1API
	tls *httptest.Server
}

// newRequestsAPI is the v1 harness with project db taking requests that
// need two approvals from leads (alice, bob, carol; not dave), the owned
// tokens, and pending requests r-alicexxx and r-erinxxxx.
func newRequestsAPI(t *testing.T) *requestsAPI {
	t.Helper()
	a := newV1API(t)
	a.srv.SetTokenLimit(time.Millisecond, 10000)
	now := time.Now().UTC()
	settings := raftstore.DefaultProjectSettings()
	settings.Requests = &raftstore.RequestPolicy{Approvers: []string{"leads"}, Approvals: 2}
	cmds := []raftstore.Command{
		&raftstore.GroupUpsert{Name: "leads", GID: 20002, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: settings}, Now: now},
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		cmds = append(cmds, &raftstore.UserUpsert{User: raftstore.User{ID: "u-" + u, Login: u, UnixName: u, Groups: []string{"eng", "leads"}}, Now: now})
	}
	for name, so := range ownedTokens {
		cmds = append(cmds, &raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "st-" + name, Name: name,
			Hash: api.HashSecret("rps_" + name), Role: so[0], CreatedBy: strings.TrimPrefix(so[1], "u-"), OwnerID: so[1]}, Now: now})
	}
	cmds = append(cmds,
		&raftstore.AccessRequestCreate{ID: "r-alicexxx", Project: "db", UserID: "u-alice", Reason: "migrate", Duration: time.Hour, Now: now},
		&raftstore.AccessRequestCreate{ID: "r-erinxxxx", Project: "db", UserID: "u-erin", Reason: "debug", Duration: time.Hour, Now: now})
	a.store.MustApply(t, cmds...)
	ts := httptest.NewTLSServer(a.srv)
	t.Cleanup(ts.Close)
	ra := &requestsAPI{v1API: a, tls: ts}
	// Each token's first use writes its last-used time (touch): made here,
	// so that a refusal later is seen to write nothing.
	names := []string{raftstore.ServiceRoleRead, raftstore.ServiceRoleAuditor, raftstore.ServiceRoleApprover, raftstore.ServiceRoleAdmin}
	for name := range ownedTokens {
		names = append(names, name)
	}
	for _, name := range names {
		if _, err := ra.as(name).AccessRequests(context.Background(), client.ListOptions{Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	a.srv.touchWG.Wait()
	return ra
}

// as is a client with token name's secret (a scope's harness token when
// name is a scope).
func (a *requestsAPI) as(name string) *client.Client {
	a.t.Helper()
	secret, ok := scopeSecrets[name]
	if !ok {
		secret = "rps_" + name
	}
	c, err := client.New([]string{a.tls.URL}, client.WithTLSConfig(a.tls.Client().Transport.(*http.Transport).TLSClientConfig), client.WithToken(secret))
	if err != nil {
		a.t.Fatal(err)
	}
	return c
}

// refused checks err is the API's refusal status/code whose message holds
// msg, and that nothing was written.
func (a *requestsAPI) refused(err error, before uint64, status int, code, msg string) {
	a.t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != status || ce.Code != code || !strings.Contains(ce.Message, msg) {
		a.t.Fatalf("want HTTP %d %s %q, got %v", status, code, msg, err)
	}
	a.srv.touchWG.Wait()
	if got := a.store.State().LatestIndex(); got != before {
		a.t.Fatalf("a refused decision wrote (index %d -> %d)", before, got)
	}
}

func (a *requestsAPI) index() uint64 {
	a.srv.touchWG.Wait()
	return a.store.State().LatestIndex()
}

// TestAccessRequestScopes: read and auditor tokens read requests but cannot
// decide; approver and admin tokens decide. The harness's own tokens are
// owned by nobody, so the approver one, which reaches the route, is refused
// for that, not for its scope.
func TestAccessRequestScopes(t *testing.T) {
	a := newRequestsAPI(t)
	ctx := context.Background()
	for _, scope := range []string{raftstore.ServiceRoleRead, raftstore.ServiceRoleAuditor, raftstore.ServiceRoleApprover, raftstore.ServiceRoleAdmin} {
		if _, err := a.as(scope).AccessRequest(ctx, "r-erinxxxx"); err != nil {
			t.Errorf("%s reads a request: %v", scope, err)
		}
		if got := a.call(scope, "GET", "/v1/access-requests?state=pending", "", true); got.status != http.StatusOK {
			t.Errorf("%s lists requests: HTTP %d %s", scope, got.status, got.body)
		}
	}
	for _, scope := range []string{raftstore.ServiceRoleRead, raftstore.ServiceRoleAuditor, raftstore.ServiceRoleProvisioning} {
		before := a.index()
		_, err := a.as(scope).ApproveAccessRequest(ctx, "r-erinxxxx")
		a.refused(err, before, http.StatusForbidden, "insufficient_scope", "cannot use POST /v1/access-requests/{id}/approve")
		_, err = a.as(scope).DenyAccessRequest(ctx, "r-erinxxxx", "no")
		a.refused(err, before, http.StatusForbidden, "insufficient_scope", "cannot use")
	}
	before := a.index()
	got := a.call(raftstore.ServiceRoleApprover, "POST", "/v1/access-requests/r-erinxxxx/approve", "", true)
	if got.status != http.StatusForbidden || got.code() != "forbidden" || !strings.Contains(string(got.body), "belongs to no person") {
		t.Fatalf("an ownerless approver token approving: HTTP %d %s", got.status, got.body)
	}
	if a.index() != before {
		t.Fatal("a refused approval wrote")
	}
}

// TestAccessRequestDecisions: a token approves as its owner, once per
// person (bob's approver token and bob's admin token are one approver), the
// second person's approval approves; every decision is one audit event with
// the token as actor; an approval by a token its requester owns is refused.
func TestAccessRequestDecisions(t *testing.T) {
	a := newRequestsAPI(t)
	ctx := context.Background()

	// alice is a lead, but the request is hers: her token may not approve.
	before := a.index()
	_, err := a.as("alice-approver").ApproveAccessRequest(ctx, "r-alicexxx")
	a.refused(err, before, http.StatusForbidden, "forbidden", "your own request")
	_, err = a.as("alice-approver").DenyAccessRequest(ctx, "r-alicexxx", "changed my mind")
	a.refused(err, before, http.StatusForbidden, "forbidden", "your own request")
	// dave is in no approver group of db.
	_, err = a.as("dave-approver").ApproveAccessRequest(ctx, "r-erinxxxx")
	a.refused(err, before, http.StatusForbidden, "forbidden", "not an approver of project db")

	r, err := a.as("bob-approver").ApproveAccessRequest(ctx, "r-erinxxxx")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "pending" || len(r.Approvals) != 1 || r.Approvals[0].By != "u-bob" || r.Approvals[0].Login != "bob (api:bob-approver)" {
		t.Fatalf("after the first approval: %+v", r)
	}
	ev := a.lastAudit()
	if ev.Type != "access_request.approve" || ev.Actor != "api:bob-approver" || ev.Fields["request"] != "r-erinxxxx" ||
		ev.Fields["approvals"] != "1/2" || ev.Fields["token_id"] != "st-bob-approver" || ev.Fields["approver"] != "bob (api:bob-approver)" {
		t.Fatalf("approval audited as %+v", ev)
	}
	// bob's admin token is bob again.
	before = a.index()
	_, err = a.as("bob-admin").ApproveAccessRequest(ctx, "r-erinxxxx")
	a.refused(err, before, http.StatusConflict, "conflict", "needs another approver")

	r, err = a.as("carol-approver").ApproveAccessRequest(ctx, "r-erinxxxx")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "approved" || len(r.Approvals) != 2 || r.ExpiresAt == nil || r.ApprovedAt == nil {
		t.Fatalf("after the second approval: %+v", r)
	}
	if ev := a.lastAudit(); ev.Type != "access_request.approve" || ev.Actor != "api:carol-approver" || ev.Fields["state"] != "approved" || ev.Fields["expires_at"] == "" {
		t.Fatalf("second approval audited as %+v", ev)
	}

	// Deny needs a reason; then it is audited with it.
	before = a.index()
	_, err = a.as("carol-approver").DenyAccessRequest(ctx, "r-alicexxx", "  ")
	a.refused(err, before, http.StatusBadRequest, "invalid", "reason is required")
	if got := a.call(raftstore.ServiceRoleAdmin, "POST", "/v1/access-requests/r-alicexxx/deny", `{"reason":"x","why":"y"}`, false); got.status != http.StatusBadRequest {
		t.Fatalf("a body with an unknown field: HTTP %d %s", got.status, got.body)
	}
	_, err = a.as("carol-approver").DenyAccessRequest(ctx, "r-nosuchxx", "no")
	a.refused(err, before, http.StatusNotFound, "not_found", "not found")
	_, err = a.as("carol-approver").DenyAccessRequest(ctx, "../x", "no")
	a.refused(err, before, http.StatusNotFound, "not_found", "not found")
	_, err = a.as("carol-approver").DenyAccessRequest(ctx, "r-erinxxxx", "too late")
	a.refused(err, before, http.StatusConflict, "conflict", "not pending")

	// The harness's admin token belongs to no person: it may deny, as
	// itself, but never approve.
	_, err = a.as(raftstore.ServiceRoleAdmin).ApproveAccessRequest(ctx, "r-alicexxx")
	a.refused(err, before, http.StatusForbidden, "forbidden", "belongs to no person")
	r, err = a.as(raftstore.ServiceRoleAdmin).DenyAccessRequest(ctx, "r-alicexxx", "not this week")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "denied" || r.DecidedBy != "api:admin-bot" || r.DecisionReason != "not this week" {
		t.Fatalf("denied: %+v", r)
	}
	if ev := a.lastAudit(); ev.Type != "access_request.deny" || ev.Actor != "api:admin-bot" || ev.Fields["reason"] != "not this week" || ev.Fields["by"] != "api:admin-bot" {
		t.Fatalf("deny audited as %+v", ev)
	}

	// Revoke the approved one: a reason, then the event.
	before = a.index()
	_, err = a.as("bob-approver").RevokeAccessRequest(ctx, "r-erinxxxx", "")
	a.refused(err, before, http.StatusBadRequest, "invalid", "reason is required")
	got := a.call("", "POST", "/v1/access-requests/r-erinxxxx/revoke", `{"reason":"done"}`, true)
	if got.status != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d %s", got.status, got.body)
	}
	r, err = a.as("bob-approver").RevokeAccessRequest(ctx, "r-erinxxxx", "incident over")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "revoked" || r.DecidedBy != "bob (api:bob-approver)" {
		t.Fatalf("revoked: %+v", r)
	}
	if ev := a.lastAudit(); ev.Type != "access_request.revoke" || ev.Actor != "api:bob-approver" || ev.Fields["reason"] != "incident over" {
		t.Fatalf("revoke audited as %+v", ev)
	}
	// The answers match the document.
	if got := a.call(raftstore.ServiceRoleRead, "GET", "/v1/access-requests/r-erinxxxx", "", true); got.status != http.StatusOK ||
		decode[api.AccessRequest](t, got.body).State != "revoked" {
		t.Fatalf("read back: HTTP %d %s", got.status, got.body)
	}
}

// TestAccessRequestList: newest first, pages that join up, the filters, and
// a bad state refused.
func TestAccessRequestList(t *testing.T) {
	a := newRequestsAPI(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var want []string
	for _, id := range []string{"r-dave2aaa", "r-bob2aaaa", "r-carol2aa"} {
		user := "u-" + strings.TrimRight(strings.TrimPrefix(id, "r-"), "2a")
		a.store.MustApply(t, &raftstore.AccessRequestCreate{ID: id, Project: "db", UserID: user, Reason: "why", Duration: time.Hour, Now: now})
	}
	// Newest first: the order they were made, backwards.
	want = []string{"r-carol2aa", "r-bob2aaaa", "r-dave2aaa", "r-erinxxxx", "r-alicexxx"}
	c := a.as(raftstore.ServiceRoleRead)
	var got []string
	o := client.ListOptions{Limit: 2}
	for pages := 0; ; pages++ {
		p, err := c.AccessRequests(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > 2 || pages > 3 {
			t.Fatalf("page %d: %d items", pages, len(p.Items))
		}
		for _, r := range p.Items {
			got = append(got, r.ID)
		}
		if p.NextCursor == "" {
			break
		}
		o.Cursor = p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	if _, err := a.as("carol-approver").ApproveAccessRequest(ctx, "r-bob2aaaa"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		filter url.Values
		want   []string
	}{
		{url.Values{"user": {"alice"}}, []string{"r-alicexxx"}},
		{url.Values{"user": {"u-erin"}}, []string{"r-erinxxxx"}},
		{url.Values{"project": {"web"}}, nil},
		{url.Values{"project": {"db"}, "state": {"pending"}}, want},
		{url.Values{"state": {"approved"}}, nil},
	} {
		p, err := c.AccessRequests(ctx, client.ListOptions{Filter: tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%v: %v, want %v", tc.filter, ids, tc.want)
		}
	}
	p, err := c.AccessRequest(ctx, "r-bob2aaaa")
	if err != nil || len(p.Approvals) != 1 || p.State != "pending" {
		t.Fatalf("r-bob2aaaa after one of two approvals: %+v, %v", p, err)
	}
	_, err = c.AccessRequests(ctx, client.ListOptions{Filter: url.Values{"state": {"open"}}})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || ce.Code != "invalid" {
		t.Fatalf("state=open: %v", err)
	}
	if got := a.call(raftstore.ServiceRoleRead, "GET", "/v1/access-requests?cursor=%21", "", false); got.status != http.StatusBadRequest || got.code() != "invalid_cursor" {
		t.Fatalf("a bad cursor: HTTP %d %s", got.status, got.body)
	}
}

// TestApproverTokenNeedsAPerson: the API, whose actor is a token, cannot
// create an approver token (it would approve as nobody).
func TestApproverTokenNeedsAPerson(t *testing.T) {
	a := newRequestsAPI(t)
	before := a.index()
	_, err := a.as(raftstore.ServiceRoleAdmin).CreateServiceToken(context.Background(), api.ServiceTokenRequest{Name: "ci", Scope: "approver"})
	a.refused(err, before, http.StatusBadRequest, "invalid_scope", "admin shell")
}
