package e2e

// The tests reach a node's HTTPS API through client.Client, the typed client
// the agent and a joining node use (Node.API trusts the cluster CA and
// carries the admin token). The steps below make one call with the request
// timeout and end the test if it fails.

import (
	"context"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// must makes one API call with the request timeout and ends the test if it
// fails.
func must(t testing.TB, what string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	fatalIf(t, call(ctx), what)
}

// writeProject creates or replaces project name as p.
func writeProject(t testing.TB, c *client.Client, name string, p api.Project) {
	t.Helper()
	must(t, "PUT project "+name, func(ctx context.Context) error {
		_, err := c.PutProject(ctx, name, &p)
		return err
	})
}

// getProject reads project name.
func getProject(t testing.TB, c *client.Client, name string) api.Project {
	t.Helper()
	var p *api.Project
	must(t, "GET project "+name, func(ctx context.Context) (err error) {
		p, err = c.Project(ctx, name)
		return err
	})
	return *p
}

// revoke revokes group's grant of project.
func revoke(t testing.TB, c *client.Client, project, group string) {
	t.Helper()
	must(t, "DELETE grant "+project+"/"+group, func(ctx context.Context) error {
		return c.DeleteGrant(ctx, project, group)
	})
}

// putServer registers server id as s.
func putServer(t testing.TB, c *client.Client, id string, s api.Server) {
	t.Helper()
	must(t, "PUT server "+id, func(ctx context.Context) error {
		_, err := c.PutServer(ctx, id, &s)
		return err
	})
}

// hostCAKeys is the target host CA's keys (GET /v1/ca/host).
func hostCAKeys(t testing.TB, c *client.Client) api.CAKeys {
	t.Helper()
	return caKeysOf(t, "GET the target host CA", c.HostCAKeys)
}

// nodeHostCAKeys is the node host CA's keys (GET /v1/ca/node-host).
func nodeHostCAKeys(t testing.TB, c *client.Client) api.CAKeys {
	t.Helper()
	return caKeysOf(t, "GET the node host CA", c.NodeHostCAKeys)
}

// userCAKeys is project's user CA keys (GET /v1/ca/user/{project}).
func userCAKeys(t testing.TB, c *client.Client, project string) api.CAKeys {
	t.Helper()
	return caKeysOf(t, "GET the user CA of "+project, func(ctx context.Context) (*api.CAKeys, error) {
		return c.UserCAKeys(ctx, project)
	})
}

func caKeysOf(t testing.TB, what string, get func(context.Context) (*api.CAKeys, error)) api.CAKeys {
	t.Helper()
	var k *api.CAKeys
	must(t, what, func(ctx context.Context) (err error) {
		k, err = get(ctx)
		return err
	})
	return *k
}
