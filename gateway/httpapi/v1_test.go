package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// samplePath fills a route pattern's wildcards with names that exist in
// the harness (or harmless ones).
func samplePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{name}", "web", "{group}", "eng", "{id}", "nope", "{hash}", strings.Repeat("ab", 32), "{project}", "web")
	return method, r.Replace(path)
}

// TestScopeReachesRoutes tries every admin route with a token of every
// scope: a scope that does not reach the route is answered 403
// insufficient_scope, and one that does is not refused for its scope. In
// particular a read token cannot write, an auditor token cannot see service
// tokens, and a provisioning token reaches nothing here (SCIM only).
func TestScopeReachesRoutes(t *testing.T) {
	a := newV1API(t)
	a.srv.SetTokenLimit(time.Millisecond, 10000)
	for _, rt := range a.srv.adminRoutes() {
		if rt.pattern == "GET /v1/cluster/backup" {
			continue // needs a snapshotter; its scope is checked below with a refusal
		}
		for _, scope := range raftstore.ServiceRoles {
			t.Run(scope+"/"+rt.pattern, func(t *testing.T) {
				method, path := samplePath(rt.pattern)
				a.srv.touchWG.Wait()
				before := a.store.State().LatestIndex()
				got := a.call(scope, method, path, "{}", false)
				refused := got.status == http.StatusForbidden && got.code() == "insufficient_scope"
				if want := reaches(scope, rt.need); refused == want {
					t.Fatalf("scope %s: HTTP %d %s (reaches: %v)", scope, got.status, got.body, want)
				}
				if refused && a.store.State().LatestIndex() != before {
					t.Fatal("a refused request wrote")
				}
			})
		}
	}
	for _, tc := range []struct{ scope, method, path string }{
		{"read", "PUT", "/v1/projects/web"},
		{"read", "POST", "/v1/users/alice/disable"},
		{"read", "GET", "/v1/service-tokens"},
		{"auditor", "GET", "/v1/service-tokens"},
		{"auditor", "GET", "/v1/users"},
		{"auditor", "GET", "/v1/cluster/backup"},
		{"provisioning", "GET", "/v1/projects"},
		{"provisioning", "GET", "/v1/audit"},
	} {
		t.Run("named/"+tc.scope+tc.method+tc.path, func(t *testing.T) {
			if got := a.call(tc.scope, tc.method, tc.path, "", false); got.status != http.StatusForbidden || got.code() != "insufficient_scope" {
				t.Fatalf("HTTP %d %s", got.status, got.body)
			}
		})
	}
	// An auditor reaches sessions and the audit log.
	for _, p := range []string{"/v1/sessions", "/v1/audit", "/v1/audit/verify", "/v1/sessions/sess-1"} {
		if got := a.call("auditor", "GET", p, "", true); got.status != http.StatusOK {
			t.Errorf("auditor GET %s: HTTP %d %s", p, got.status, got.body)
		}
	}
}

// TestV1Routes drives each route once, checking the answer, its error code
// for a refusal, and the audit event of each change (actor: api:<token>).
func TestV1Routes(t *testing.T) {
	a := newV1API(t)
	for _, tc := range []struct {
		name, scope, method, path, body string
		status                          int
		want                            string // in the body
		code                            string // of an error
		event                           string // audit event type of a change
	}{
		{name: "ok/users-list", scope: "read", method: "GET", path: "/v1/users", status: 200, want: `"login":"alice"`},
		{name: "ok/users-list-status", scope: "read", method: "GET", path: "/v1/users?status=disabled", status: 200, want: `"items":[]`},
		{name: "fail/users-list-bad-status", scope: "read", method: "GET", path: "/v1/users?status=gone", status: 400, code: "invalid"},
		{name: "ok/user-show-by-login", scope: "read", method: "GET", path: "/v1/users/bob", status: 200, want: `"id":"u-bob"`},
		{name: "ok/user-show-by-id", scope: "read", method: "GET", path: "/v1/users/u-bob", status: 200, want: `"login":"bob"`},
		{name: "fail/user-show-missing", scope: "read", method: "GET", path: "/v1/users/zed", status: 404, code: "not_found"},
		{name: "ok/user-disable", scope: "admin", method: "POST", path: "/v1/users/dave/disable", status: 200, want: `"status":"disabled"`, event: "user.disable"},
		{name: "ok/user-enable", scope: "admin", method: "POST", path: "/v1/users/dave/enable", status: 200, want: `"status":"active"`, event: "user.enable"},
		{name: "fail/user-disable-missing", scope: "admin", method: "POST", path: "/v1/users/zed/disable", status: 404, code: "not_found"},
		{name: "ok/groups", scope: "read", method: "GET", path: "/v1/groups", status: 200, want: `"name":"eng"`},
		{name: "ok/entitlements", scope: "read", method: "GET", path: "/v1/entitlements", status: 200, want: `"items":[]`},
		{name: "ok/servers", scope: "read", method: "GET", path: "/v1/servers?project=web", status: 200, want: `"id":"srv-web-1"`},
		{name: "ok/server-show", scope: "read", method: "GET", path: "/v1/servers/srv-web-1", status: 200, want: `"name":"web-1"`},
		{name: "fail/server-show-missing", scope: "read", method: "GET", path: "/v1/servers/nope", status: 404, code: "not_found"},
		{name: "ok/grant", scope: "admin", method: "PUT", path: "/v1/projects/web/grants/eng", body: `{"role":"user"}`, status: 200, event: "grant.create"},
		{name: "ok/grants-list", scope: "read", method: "GET", path: "/v1/projects/web/grants", status: 200, want: `"group":"eng"`},
		{name: "fail/grants-missing-project", scope: "read", method: "GET", path: "/v1/projects/nope/grants", status: 404, code: "not_found"},
		{name: "ok/grant-revoke", scope: "admin", method: "DELETE", path: "/v1/projects/web/grants/eng", status: 200, event: "grant.revoke"},
		{name: "ok/project-put", scope: "admin", method: "PUT", path: "/v1/projects/db", body: `{"description":"db"}`, status: 200, event: "project.create"},
		{name: "ok/server-put", scope: "admin", method: "PUT", path: "/v1/servers/srv-db-1", body: `{"project":"db","name":"db-1","addr":"10.0.0.12"}`, status: 200, event: "server.register"},
		{name: "ok/server-delete", scope: "admin", method: "DELETE", path: "/v1/servers/srv-db-1", status: 200, event: "server.delete"},
		{name: "fail/token-create-no-cluster", scope: "admin", method: "POST", path: "/v1/tokens", body: `{"project":"web"}`, status: 503, code: "no_cluster"},
		{name: "fail/token-create-bad-ttl", scope: "admin", method: "POST", path: "/v1/tokens", body: `{"project":"web","ttl":"soon"}`, status: 400, code: "invalid"},
		{name: "fail/token-create-unknown-field", scope: "admin", method: "POST", path: "/v1/tokens", body: `{"project":"web","color":"red"}`, status: 400, code: "invalid"},
		{name: "ok/tokens-list", scope: "read", method: "GET", path: "/v1/tokens", status: 200, want: `"items":[]`},
		{name: "fail/token-revoke-missing", scope: "admin", method: "DELETE", path: "/v1/tokens/" + strings.Repeat("ab", 32), status: 404, code: "not_found"},
		{name: "ok/bindings-list", scope: "read", method: "GET", path: "/v1/bindings?user=u-bob", status: 200, want: `"user_id":"u-bob"`},
		{name: "fail/bindings-revoke-none-named", scope: "admin", method: "POST", path: "/v1/bindings/revoke", body: `{}`, status: 400, code: "invalid"},
		{name: "ok/sessions-active", scope: "auditor", method: "GET", path: "/v1/sessions?status=active", status: 200, want: `"id":"sess-1"`},
		{name: "fail/sessions-bad-status", scope: "auditor", method: "GET", path: "/v1/sessions?status=open", status: 400, code: "invalid"},
		{name: "ok/session-show", scope: "auditor", method: "GET", path: "/v1/sessions/sess-2", status: 200, want: `"end_reason":"eof"`},
		{name: "fail/session-kill-ended", scope: "admin", method: "POST", path: "/v1/sessions/sess-2/kill", status: 409, code: "conflict"},
		{name: "ok/session-kill", scope: "admin", method: "POST", path: "/v1/sessions/sess-1/kill", status: 200, event: "session.kill"},
		{name: "ok/ca-keys", scope: "read", method: "GET", path: "/v1/ca/keys?kind=user", status: 200, want: `"items":[]`},
		{name: "fail/ca-keys-bad-kind", scope: "read", method: "GET", path: "/v1/ca/keys?kind=gpg", status: 400, code: "invalid"},
		{name: "ok/members", scope: "read", method: "GET", path: "/v1/cluster/members", status: 200, want: `"id":"n2"`},
		{name: "ok/status", scope: "read", method: "GET", path: "/v1/cluster/status", status: 200, want: `"node_id"`},
		{name: "ok/audit-verify", scope: "auditor", method: "GET", path: "/v1/audit/verify", status: 200, want: `"ok":true`},
		{name: "ok/service-tokens-list", scope: "admin", method: "GET", path: "/v1/service-tokens", status: 200, want: `"owner":"alice"`},
		{name: "fail/service-token-bad-scope", scope: "admin", method: "POST", path: "/v1/service-tokens", body: `{"name":"x","scope":"root"}`, status: 400, code: "invalid_scope"},
		{name: "fail/service-token-duplicate", scope: "admin", method: "POST", path: "/v1/service-tokens", body: `{"name":"read-bot","scope":"read"}`, status: 409, code: "conflict"},
		{name: "ok/service-token-create", scope: "admin", method: "POST", path: "/v1/service-tokens", body: `{"name":"dash","scope":"read","ttl":"720h"}`, status: 201, want: `"token":"rps_`, event: "service_token.create"},
		{name: "ok/service-token-revoke", scope: "admin", method: "DELETE", path: "/v1/service-tokens/st-read", status: 200, event: "service_token.revoke"},
		{name: "fail/service-token-revoke-missing", scope: "admin", method: "DELETE", path: "/v1/service-tokens/st-read", status: 404, code: "not_found"},
		{name: "ok/bindings-revoke", scope: "admin", method: "POST", path: "/v1/bindings/revoke", body: `{"user_id":"u-bob"}`, status: 200, want: `"revoked":1`, event: "binding.revoke"},
		{name: "fail/cursor", scope: "admin", method: "GET", path: "/v1/users?cursor=%21%21", status: 400, code: "invalid_cursor"},
		{name: "fail/limit", scope: "admin", method: "GET", path: "/v1/users?limit=0", status: 400, code: "invalid_limit"},
		{name: "fail/no-token", method: "GET", path: "/v1/users", status: 401, code: "missing_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqBefore := a.lastAudit().Seq
			got := a.call(tc.scope, tc.method, tc.path, tc.body, tc.status < 400)
			if got.status != tc.status || !strings.Contains(string(got.body), tc.want) {
				t.Fatalf("HTTP %d %s, want %d with %q", got.status, got.body, tc.status, tc.want)
			}
			if tc.code != "" && got.code() != tc.code {
				t.Errorf("code %q, want %q", got.code(), tc.code)
			}
			e := a.lastAudit()
			switch {
			case tc.event == "" && e.Seq != seqBefore:
				t.Errorf("unexpected audit event %s", e.Type)
			case tc.event != "" && (e.Seq != seqBefore+1 || e.Type != tc.event || e.Actor != "api:"+tc.scope+"-bot" || e.Fields["token_id"] != "st-"+tc.scope):
				t.Errorf("audit %d after %d: %+v, want one %s by api:%s-bot", e.Seq, seqBefore, e, tc.event, tc.scope)
			}
		})
	}
}

// TestV1Pagination follows next_cursor through the users, 2 at a time.
func TestV1Pagination(t *testing.T) {
	a := newV1API(t)
	var logins []string
	path := "/v1/users?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the cursor does not end")
		}
		got := a.call("read", "GET", path, "", true)
		p := decode[api.Page[api.User]](t, got.body)
		if len(p.Items) > 2 {
			t.Fatalf("page of %d", len(p.Items))
		}
		for _, u := range p.Items {
			logins = append(logins, u.Login)
		}
		if p.NextCursor == "" {
			break
		}
		path = "/v1/users?limit=2&cursor=" + p.NextCursor
	}
	if got := strings.Join(logins, ","); got != "alice,bob,carol,dave,erin" {
		t.Fatalf("users %s", got)
	}
}

// TestV1AuditQuery: the filters, the audit log's own pages, and following
// it with ?index=&wait=.
func TestV1AuditQuery(t *testing.T) {
	a := newV1API(t)
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"type=session", []uint64{2, 3}},
		{"type=session.open&actor=carol", []uint64{3}},
		{"session=sess-1", []uint64{2}},
		{"server=srv-web-1&project=web", []uint64{2, 3}},
		{"project=db", nil},
		{"since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil},
		{"until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + "&limit=2", []uint64{1, 2}},
	} {
		t.Run("ok/"+tc.query, func(t *testing.T) {
			p := decode[api.Page[api.AuditEvent]](t, a.call("auditor", "GET", "/v1/audit?"+tc.query, "", true).body)
			var seqs []uint64
			for _, e := range p.Items {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs %v, want %v", seqs, tc.want)
			}
		})
	}
	if got := a.call("auditor", "GET", "/v1/audit?since=yesterday", "", false); got.status != 400 || got.code() != "invalid" {
		t.Fatalf("bad since: HTTP %d %s", got.status, got.body)
	}
	p := decode[api.Page[api.AuditEvent]](t, a.call("auditor", "GET", "/v1/audit?limit=2", "", true).body)
	next := decode[api.Page[api.AuditEvent]](t, a.call("auditor", "GET", "/v1/audit?limit=2&cursor="+p.NextCursor, "", true).body)
	if len(next.Items) != 1 || next.Items[0].Seq != 3 || next.NextCursor != "" {
		t.Fatalf("second page %+v", next)
	}
	// Following: a query at the current index waits for the next event.
	got := a.call("auditor", "GET", "/v1/audit", "", true)
	idx := got.header.Get(api.IndexHeader)
	done := make(chan v1Answer, 1)
	go func() {
		done <- a.call("auditor", "GET", "/v1/audit?type=user&index="+idx+"&wait=30s", "", true)
	}()
	a.call("admin", "POST", "/v1/users/erin/disable", "", true)
	w := <-done
	follow := decode[api.Page[api.AuditEvent]](t, w.body)
	if len(follow.Items) != 1 || follow.Items[0].Type != "user.disable" {
		t.Fatalf("followed %s", w.body)
	}
	if n, _ := strconv.ParseUint(w.header.Get(api.IndexHeader), 10, 64); strconv.FormatUint(n, 10) == idx {
		t.Fatal("the index did not move")
	}
}

// TestV1TokenLimit: a token that keeps being refused is answered 429 past
// its limit, counted in the metrics, while another token is not affected.
func TestV1TokenLimit(t *testing.T) {
	a := newV1API(t)
	a.srv.SetTokenLimit(time.Hour, 3)
	for i := range 3 {
		if got := a.call("read", "PUT", "/v1/projects/web", "{}", false); got.status != http.StatusForbidden {
			t.Fatalf("refusal %d: HTTP %d", i, got.status)
		}
	}
	got := a.call("read", "GET", "/v1/users", "", false)
	if got.status != http.StatusTooManyRequests || got.code() != "rate_limited" || got.header.Get("Retry-After") == "" {
		t.Fatalf("past the limit: HTTP %d %s", got.status, got.body)
	}
	if got := a.call("admin", "GET", "/v1/users", "", true); got.status != http.StatusOK {
		t.Fatalf("another token: HTTP %d", got.status)
	}
	m := a.srv.metrics.TokenRefusals
	if testutil.ToFloat64(m.WithLabelValues("insufficient_scope")) != 3 || testutil.ToFloat64(m.WithLabelValues("rate_limited")) != 1 {
		t.Fatalf("metrics: scope %v, limited %v", testutil.ToFloat64(m.WithLabelValues("insufficient_scope")), testutil.ToFloat64(m.WithLabelValues("rate_limited")))
	}
}

// TestV1LastUsed: a token's use is recorded, at most once per interval (one
// raft write however many requests), and shown in the list.
func TestV1LastUsed(t *testing.T) {
	a := newV1API(t)
	clock := time.Now().UTC()
	a.srv.now = func() time.Time { return clock }
	for range 5 {
		a.call("auditor", "GET", "/v1/audit", "", true)
	}
	a.srv.touchWG.Wait()
	_, tok, _ := a.store.State().ServiceTokenByName(nil, "auditor-bot")
	first := tok.ModifyIndex
	if !tok.LastUsedAt.Equal(clock) {
		t.Fatalf("last used %v, want %v", tok.LastUsedAt, clock)
	}
	clock = clock.Add(TouchInterval / 2)
	a.call("auditor", "GET", "/v1/audit", "", true)
	a.srv.touchWG.Wait()
	if _, tok, _ = a.store.State().ServiceTokenByName(nil, "auditor-bot"); tok.ModifyIndex != first {
		t.Fatal("a use within the interval wrote again")
	}
	clock = clock.Add(TouchInterval)
	a.call("auditor", "GET", "/v1/audit", "", true)
	a.srv.touchWG.Wait()
	if _, tok, _ = a.store.State().ServiceTokenByName(nil, "auditor-bot"); !tok.LastUsedAt.Equal(clock) {
		t.Fatalf("after the interval: last used %v, want %v", tok.LastUsedAt, clock)
	}
	p := decode[api.Page[api.ServiceToken]](t, a.call("admin", "GET", "/v1/service-tokens", "", true).body)
	for _, st := range p.Items {
		if st.Name == "auditor-bot" && (st.LastUsedAt == nil || !st.LastUsedAt.Equal(clock)) {
			t.Fatalf("listed %+v", st)
		}
	}
}
