package client

import (
	"context"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
)

// ClientSetup returns what `rampart setup` writes into a person's ~/.ssh
// (GET /v1/client/setup, public).
func (c *Client) ClientSetup(ctx context.Context) (*api.ClientSetup, error) {
	var out api.ClientSetup
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/client/setup", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
