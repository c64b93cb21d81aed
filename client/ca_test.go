package client_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// CA rotation steps go to their chain's path, with a body only when an
// algorithm is given, and decode the chain after the step.
func TestRotateCACalls(t *testing.T) {
	var mu sync.Mutex
	var got []string
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+strings.TrimSpace(string(b)))
		mu.Unlock()
		answer(http.StatusOK, api.CARotation{Kind: "user", Project: "web", Step: "begin", Phase: "staged",
			Active: &api.CAKey{ID: "a"}, Waiting: &api.CAKey{ID: "b"}})(w, r)
	})
	c := newClient(t, []string{n.addr()}, client.WithRootCAs(roots(n)), client.WithToken("svc-token"))
	ctx := context.Background()
	r, err := c.RotateUserCA(ctx, "web team", client.RotationBegin, "ecdsa-p256")
	if err != nil || r.Phase != "staged" || r.Waiting == nil || r.Waiting.ID != "b" {
		t.Fatalf("RotateUserCA: %+v, %v", r, err)
	}
	if _, err := c.RotateHostCA(ctx, client.RotationPromote, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateNodeHostCA(ctx, client.RotationRetire, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`POST /v1/ca/user/web%20team/rotation/begin {"algorithm":"ecdsa-p256"}`,
		"POST /v1/ca/host/rotation/promote ",
		"POST /v1/ca/node-host/rotation/retire ",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
}

// Projects follows the list's cursors to the last page.
func TestProjectsFollowsPages(t *testing.T) {
	var mu sync.Mutex
	var got []string
	n := newNode(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		switch r.URL.Query().Get("cursor") {
		case "":
			answer(http.StatusOK, api.Page[api.Project]{Items: []api.Project{{Name: "a"}, {Name: "b"}}, NextCursor: "Yg"})(w, r)
		default:
			answer(http.StatusOK, api.Page[api.Project]{Items: []api.Project{{Name: "c"}}})(w, r)
		}
	})
	c := newClient(t, []string{n.addr()}, client.WithRootCAs(roots(n)), client.WithToken("svc-token"))
	ps, err := c.Projects(context.Background(), client.Consistent())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(names, ",") != "a,b,c" || !slices.Equal(got, []string{"/v1/projects?consistent=true", "/v1/projects?consistent=true&cursor=Yg"}) {
		t.Fatalf("projects %v from requests %v", names, got)
	}
}
