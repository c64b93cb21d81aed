package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// TestV1ProjectsPagination follows next_cursor through the projects, 2 at
// a time, in name order, as the other lists page; a bad cursor or limit is
// refused with its code.
func TestV1ProjectsPagination(t *testing.T) {
	a := newV1API(t)
	for _, name := range []string{"ops", "api", "db"} {
		a.store.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: name, Settings: raftstore.DefaultProjectSettings()}, Now: time.Now()})
	}
	var names []string
	pages := 0
	path := "/v1/projects?limit=2"
	for ; ; pages++ {
		if pages > 5 {
			t.Fatal("the cursor does not end")
		}
		got := a.call("read", "GET", path, "", true)
		p := decode[api.Page[api.Project]](t, got.body)
		if len(p.Items) > 2 || got.header.Get(api.IndexHeader) == "" {
			t.Fatalf("page of %d, index %q", len(p.Items), got.header.Get(api.IndexHeader))
		}
		for _, pr := range p.Items {
			names = append(names, pr.Name)
		}
		if p.NextCursor == "" {
			break
		}
		path = "/v1/projects?limit=2&cursor=" + p.NextCursor
	}
	if got := strings.Join(names, ","); got != "api,db,ops,web" || pages != 1 {
		t.Fatalf("projects %s in %d pages after the first", got, pages)
	}
	if p := decode[api.Page[api.Project]](t, a.call("read", "GET", "/v1/projects", "", true).body); len(p.Items) != 4 || p.NextCursor != "" {
		t.Fatalf("one default page: %+v", p)
	}
	for _, tc := range []struct{ query, code string }{{"cursor=%21%21", "invalid_cursor"}, {"limit=1001", "invalid_limit"}} {
		if got := a.call("read", "GET", "/v1/projects?"+tc.query, "", false); got.status != 400 || got.code() != tc.code {
			t.Errorf("?%s: HTTP %d %s, want 400 %s", tc.query, got.status, got.body, tc.code)
		}
	}
}
