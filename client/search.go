package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// SearchSessions finds sessions by text typed or shown in them
// (GET /v1/search; scope recording: admin or auditor; audited). opts may
// set "user", "server", "project" and "limit" (1 to 100).
func (c *Client) SearchSessions(ctx context.Context, text string, opts url.Values) (*api.SearchResult, error) {
	q := url.Values{}
	for k, v := range opts {
		q[k] = v
	}
	q.Set("q", text)
	var out api.SearchResult
	// Each node answers from its own index: ask one, as the others may
	// not have indexed the newest recordings yet.
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/search", query: q, out: &out, stopAtRefusal: true}); err != nil {
		return nil, err
	}
	return &out, nil
}
