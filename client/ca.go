package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// CA key rotations through the API, one step per call, as the admin shell's
// `ca rotate` (docs/admin.md, "CA keys"). Each needs an admin service
// token; the answer is where the chain stands after the step.

// Rotation steps, in the order an operator meets them.
const (
	RotationBegin    = "begin"
	RotationPromote  = "promote"
	RotationRetire   = "retire"
	RotationAbort    = "abort"
	RotationRollback = "rollback"
)

// RotateUserCA makes one rotation step of a project's user CA (POST
// /v1/ca/user/{project}/rotation/{step}); algorithm is for begin only ("":
// ed25519).
func (c *Client) RotateUserCA(ctx context.Context, project, step, algorithm string) (*api.CARotation, error) {
	return c.rotateCA(ctx, "/v1/ca/user/"+url.PathEscape(project), step, algorithm)
}

// RotateHostCA makes one rotation step of the target host CA (POST
// /v1/ca/host/rotation/{step}).
func (c *Client) RotateHostCA(ctx context.Context, step, algorithm string) (*api.CARotation, error) {
	return c.rotateCA(ctx, "/v1/ca/host", step, algorithm)
}

// RotateNodeHostCA makes one rotation step of the node host CA (POST
// /v1/ca/node-host/rotation/{step}).
func (c *Client) RotateNodeHostCA(ctx context.Context, step, algorithm string) (*api.CARotation, error) {
	return c.rotateCA(ctx, "/v1/ca/node-host", step, algorithm)
}

func (c *Client) rotateCA(ctx context.Context, chain, step, algorithm string) (*api.CARotation, error) {
	var in any
	if algorithm != "" {
		in = api.CARotationRequest{Algorithm: algorithm}
	}
	return send[api.CARotation](ctx, c, http.MethodPost, chain+"/rotation/"+url.PathEscape(step), in)
}
