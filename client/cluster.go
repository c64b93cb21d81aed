package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// Join asks for a new node's certificate with a join token (POST
// /v1/cluster/join), each node once until one answers. With WithPin, the CA
// in the answer must be the pinned one (ErrPinMismatch otherwise).
func (c *Client) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	var resp api.JoinResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/cluster/join", in: req, out: &resp, each: true}); err != nil {
		return nil, err
	}
	if c.pin != "" {
		if err := checkCAPin(resp.CAPEM, c.pin); err != nil {
			return nil, err
		}
	}
	return &resp, nil
}

// JoinAsNonvoter asks, over the node certificate a join gave, to be added
// to raft as a non-voter (POST /v1/cluster/join/voter), each node once
// until one answers. The answer is the index the node must apply before it
// asks to be promoted.
func (c *Client) JoinAsNonvoter(ctx context.Context, req *api.VoterRequest) (*api.VoterResponse, error) {
	var resp api.VoterResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/cluster/join/voter", in: req, out: &resp, each: true}); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Promote asks for the calling node, a caught-up non-voter, to become a
// voter (POST /v1/cluster/join/promote), each node once until one answers.
func (c *Client) Promote(ctx context.Context) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/v1/cluster/join/promote", in: struct{}{}, each: true})
}

// Health asks the current node whether it is up (GET /v1/health, no
// credentials needed).
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/health", out: &h}); err != nil {
		return nil, err
	}
	return &h, nil
}

// ClusterStatus returns the current node's view of the cluster (GET
// /v1/cluster/status, admin).
func (c *Client) ClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	var st api.ClusterStatus
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/cluster/status", out: &st}); err != nil {
		return nil, err
	}
	return &st, nil
}

// RemoveMember removes a node from the cluster (DELETE
// /v1/cluster/members/{id}, admin).
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/v1/cluster/members/" + url.PathEscape(id)})
}

// Recording streams a finished session's recording from the current node,
// the one that carried it (GET /v1/internal/recordings/{session}, node
// certificate). The caller closes it.
func (c *Client) Recording(ctx context.Context, session string) (io.ReadCloser, error) {
	var resp *http.Response
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/internal/recordings/" + url.PathEscape(session), raw: &resp}); err != nil {
		return nil, err
	}
	return resp.Body, nil
}
