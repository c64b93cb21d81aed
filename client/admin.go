package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// The administrator's calls go to the current node only; each needs a
// service token (WithToken) unless it says otherwise.

// ReadOption changes how a node answers a read.
type ReadOption func(url.Values)

// Consistent asks for a linearizable read (?consistent=true): the node
// confirms with the leader first, instead of answering from its replica.
func Consistent() ReadOption { return func(v url.Values) { v.Set("consistent", "true") } }

func readQuery(opts []ReadOption) url.Values {
	v := url.Values{}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Projects lists every project (GET /v1/projects), following the pages.
func (c *Client) Projects(ctx context.Context, opts ...ReadOption) ([]api.Project, error) {
	o := ListOptions{Filter: readQuery(opts)}
	ps := []api.Project{}
	for {
		p, err := c.ProjectPage(ctx, o)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p.Items...)
		if p.NextCursor == "" || p.NextCursor == o.Cursor {
			return ps, nil
		}
		o.Cursor = p.NextCursor
	}
}

// ProjectPage lists one page of projects, by name (GET /v1/projects).
func (c *Client) ProjectPage(ctx context.Context, o ListOptions) (*api.Page[api.Project], error) {
	return list[api.Project](ctx, c, "/v1/projects", o)
}

// Project reads one project (GET /v1/projects/{name}).
func (c *Client) Project(ctx context.Context, name string, opts ...ReadOption) (*api.Project, error) {
	var p api.Project
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/projects/" + url.PathEscape(name), query: readQuery(opts), out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

// PutProject creates or replaces a project's description and settings (PUT
// /v1/projects/{name}) and returns it as stored.
func (c *Client) PutProject(ctx context.Context, name string, p *api.Project) (*api.Project, error) {
	var out api.Project
	if err := c.call(ctx, request{method: http.MethodPut, path: "/v1/projects/" + url.PathEscape(name), in: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutGrant grants an IdP group access to a project (PUT
// /v1/projects/{name}/grants/{group}).
func (c *Client) PutGrant(ctx context.Context, project, group string, g *api.Grant) error {
	return c.call(ctx, request{method: http.MethodPut, path: "/v1/projects/" + url.PathEscape(project) + "/grants/" + url.PathEscape(group), in: g})
}

// DeleteGrant revokes a group's grant (DELETE
// /v1/projects/{name}/grants/{group}); live sessions under it end.
func (c *Client) DeleteGrant(ctx context.Context, project, group string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/v1/projects/" + url.PathEscape(project) + "/grants/" + url.PathEscape(group)})
}

// PutServer registers a server by hand or edits one (PUT /v1/servers/{id})
// and returns it as stored.
func (c *Client) PutServer(ctx context.Context, id string, s *api.Server) (*api.Server, error) {
	var out api.Server
	if err := c.call(ctx, request{method: http.MethodPut, path: "/v1/servers/" + url.PathEscape(id), in: s, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteServer removes a server (DELETE /v1/servers/{id}).
func (c *Client) DeleteServer(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/v1/servers/" + url.PathEscape(id)})
}

// HostCAKeys returns the target host CA keys to trust (GET /v1/ca/host,
// public).
func (c *Client) HostCAKeys(ctx context.Context) (*api.CAKeys, error) {
	return c.caKeys(ctx, "/v1/ca/host")
}

// NodeHostCAKeys returns the node host CA keys to trust, for the bastion's
// own names (GET /v1/ca/node-host, public).
func (c *Client) NodeHostCAKeys(ctx context.Context) (*api.CAKeys, error) {
	return c.caKeys(ctx, "/v1/ca/node-host")
}

// UserCAKeys returns a project's user CA keys, the node creating the CA on
// first use (GET /v1/ca/user/{project}; a service token or a member node's
// certificate).
func (c *Client) UserCAKeys(ctx context.Context, project string) (*api.CAKeys, error) {
	return c.caKeys(ctx, "/v1/ca/user/"+url.PathEscape(project))
}

func (c *Client) caKeys(ctx context.Context, path string) (*api.CAKeys, error) {
	var k api.CAKeys
	if err := c.call(ctx, request{method: http.MethodGet, path: path, out: &k}); err != nil {
		return nil, err
	}
	return &k, nil
}

// TLSCA returns the cluster CA certificate, PEM (GET /v1/ca/tls, public);
// compare its Pin with a token's before trusting it.
func (c *Client) TLSCA(ctx context.Context) ([]byte, error) {
	var resp *http.Response
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/ca/tls", raw: &resp}); err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
