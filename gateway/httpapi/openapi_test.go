package httpapi

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/httpapi/scim"
)

// documented lists the document's operations as ServeMux patterns.
func documented(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for path, item := range loadOpenAPI(t).Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-rampart-scope"].(string)
			out[method+" "+path] = scope
		}
	}
	return out
}

// TestOpenAPICoversRoutes: every route the server registers (SCIM and the
// internal recordings route included) is in the document, every documented
// route is registered, and the scope the document gives an admin route is
// the one the route table checks.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := documented(t)
	h := New(nil, nil, slog.New(slog.DiscardHandler))
	// What a node mounts beside New's routes: the internal recordings route
	// and SCIM (whose library routes inside one prefix: scim.Routes lists
	// what it serves, scim.Unserved what it answers only with an error).
	h.SetRecordings(nil)
	if err := h.MountSCIM(nil, 0); err != nil {
		t.Fatal(err)
	}
	registered := h.Patterns()
	for path, why := range scim.Unserved {
		for p := range doc {
			if _, docPath, _ := strings.Cut(p, " "); docPath == path {
				t.Errorf("openapi.json documents %q, which scim.Unserved says is no route (%s)", p, why)
			}
		}
	}
	for _, p := range registered {
		if _, ok := doc[p]; !ok {
			t.Errorf("route %q is not in openapi.json", p)
		}
	}
	for p := range doc {
		if !slices.Contains(registered, p) {
			t.Errorf("openapi.json documents %q, which the server does not register", p)
		}
	}
	for _, rt := range h.adminRoutes() {
		if got := doc[rt.pattern]; got != rt.need.String() {
			t.Errorf("%s: the document says scope %q, the route table %q", rt.pattern, got, rt.need)
		}
	}
}

// TestAPIDocListsEveryPath: docs/api.md names every path of the document.
func TestAPIDocListsEveryPath(t *testing.T) {
	md, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for p := range documented(t) {
		if !strings.Contains(string(md), "`"+p+"`") {
			t.Errorf("docs/api.md does not list `%s`", p)
		}
	}
}
