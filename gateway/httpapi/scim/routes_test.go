package scim_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/httpapi/scim"
)

// TestRoutesListWhatIsServed: scim.Routes (what the OpenAPI document
// describes) has every request of every resource type the handler
// announces, each route is answered by the handler rather than the
// library's "no such endpoint", and each of scim.Unserved is answered
// with an error only.
func TestRoutesListWhatIsServed(t *testing.T) {
	n := newNode(t)
	types := n.do(http.MethodGet, "/scim/v2/ResourceTypes", "").want(t, http.StatusOK)
	resources, _ := types.body["Resources"].([]any)
	if len(resources) == 0 {
		t.Fatalf("no resource types: %s", types.raw)
	}
	for _, r := range resources {
		endpoint, _ := r.(map[string]any)["endpoint"].(string)
		base := "/scim/v2" + endpoint
		for _, want := range []string{"GET " + base, "POST " + base, "POST " + base + "/.search", "GET " + base + "/{id}",
			"PUT " + base + "/{id}", "PATCH " + base + "/{id}", "DELETE " + base + "/{id}"} {
			if !slices.Contains(scim.Routes, want) {
				t.Errorf("resource type %s: scim.Routes lacks %q", endpoint, want)
			}
		}
	}
	for _, rt := range scim.Routes {
		t.Run("ok/"+rt, func(t *testing.T) {
			method, path, _ := strings.Cut(rt, " ")
			path = strings.ReplaceAll(path, "{id}", "nope")
			body := ""
			if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
				body = "{}"
			}
			got := n.do(method, path, body)
			if got.status == http.StatusNotFound && strings.Contains(got.raw, "Specified endpoint does not exist") {
				t.Fatalf("%s is not served: %s", rt, got.raw)
			}
		})
	}
	for path, why := range scim.Unserved {
		t.Run("fail/"+path, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasSuffix(path, ".search") {
				method = http.MethodPost
			}
			if got := n.do(method, path, ""); got.status < 400 {
				t.Fatalf("%s %s (%s): HTTP %d %s", method, path, why, got.status, got.raw)
			}
		})
	}
}
