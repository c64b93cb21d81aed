package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/console"
	"github.com/rampart-ssh/rampart/raftstore"
)

func TestSearchRoute(t *testing.T) {
	a := newV1API(t)
	t.Run("fail/not-enabled", func(t *testing.T) {
		if r := a.call(raftstore.ServiceRoleAuditor, http.MethodGet, "/v1/search?q=x", "", true); r.status != http.StatusServiceUnavailable {
			t.Fatalf("without an index: %d %s", r.status, r.body)
		}
	})
	idx, err := console.OpenIndex("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	fatal := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	fatal(idx.Add(console.Doc{Session: "sess-2", User: "carol", Server: "web-1", Project: "web", Start: time.Now(),
		Lines: []console.Line{{T: 3.5, Text: "$ kubectl delete pod api"}}}))
	a.srv.SetSearch(idx)
	for _, tc := range []struct {
		name, scope, query string
		status, hits       int
	}{
		{"ok/auditor", raftstore.ServiceRoleAuditor, "q=kubectl+delete", http.StatusOK, 1},
		{"ok/user-filter", raftstore.ServiceRoleAuditor, "q=kubectl+delete&user=carol", http.StatusOK, 1},
		{"fail/read-scope", raftstore.ServiceRoleRead, "q=kubectl+delete", http.StatusForbidden, 0},
		{"ok/filtered-out", raftstore.ServiceRoleAdmin, "q=kubectl+delete&user=bob", http.StatusOK, 0},
		{"fail/provisioning-scope", raftstore.ServiceRoleProvisioning, "q=kubectl", http.StatusForbidden, 0},
		{"fail/no-token", "", "q=kubectl", http.StatusUnauthorized, 0},
		{"fail/bad-limit", raftstore.ServiceRoleAuditor, "q=kubectl&limit=0", http.StatusBadRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call(tc.scope, http.MethodGet, "/v1/search?"+tc.query, "", tc.status == http.StatusOK)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if r.status == http.StatusOK {
				res := decode[api.SearchResult](t, r.body)
				if len(res.Hits) != tc.hits || (tc.hits == 1 && (res.Hits[0].Session != "sess-2" || res.Hits[0].Offset != 3.5 || !res.Hits[0].InOutput)) {
					t.Fatalf("hits %+v, want %d", res.Hits, tc.hits)
				}
			}
		})
	}
	t.Run("ok/audited", func(t *testing.T) {
		r := a.call(raftstore.ServiceRoleAuditor, http.MethodGet, "/v1/search?q=kubectl+delete", "", true)
		e := a.lastAudit()
		if r.status != http.StatusOK || e.Type != console.EventSessionSearch || e.Fields["query"] != "kubectl delete" ||
			e.Fields["hits"] != "1" || e.Fields["sessions"] != "sess-2" || e.Fields["token_id"] == "" || e.Fields["source"] == "" {
			t.Fatalf("%d; last event %+v", r.status, e)
		}
	})
	t.Run("fail/missing-q", func(t *testing.T) {
		if r := a.call(raftstore.ServiceRoleAuditor, http.MethodGet, "/v1/search", "", false); r.status != http.StatusBadRequest {
			t.Fatalf("without q: %d", r.status)
		}
	})
}
