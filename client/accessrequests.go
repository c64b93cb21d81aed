package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// AccessRequests lists just-in-time access requests, newest first (GET
// /v1/access-requests; Filter "state", "project", "user"; scope read,
// auditor, approver or admin).
func (c *Client) AccessRequests(ctx context.Context, o ListOptions) (*api.Page[api.AccessRequest], error) {
	return list[api.AccessRequest](ctx, c, "/v1/access-requests", o)
}

// AccessRequest reads one request (GET /v1/access-requests/{id}).
func (c *Client) AccessRequest(ctx context.Context, id string) (*api.AccessRequest, error) {
	return get[api.AccessRequest](ctx, c, "/v1/access-requests/"+url.PathEscape(id))
}

// ApproveAccessRequest approves a pending request as the token's owner
// (POST /v1/access-requests/{id}/approve; scope approver or admin).
func (c *Client) ApproveAccessRequest(ctx context.Context, id string) (*api.AccessRequest, error) {
	return send[api.AccessRequest](ctx, c, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/approve", nil)
}

// DenyAccessRequest refuses a pending request; the reason is required
// (POST /v1/access-requests/{id}/deny).
func (c *Client) DenyAccessRequest(ctx context.Context, id, reason string) (*api.AccessRequest, error) {
	return send[api.AccessRequest](ctx, c, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/deny", api.AccessRequestDecision{Reason: reason})
}

// RevokeAccessRequest ends a pending or approved request now; the reason is
// required (POST /v1/access-requests/{id}/revoke).
func (c *Client) RevokeAccessRequest(ctx context.Context, id, reason string) (*api.AccessRequest, error) {
	return send[api.AccessRequest](ctx, c, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/revoke", api.AccessRequestDecision{Reason: reason})
}
