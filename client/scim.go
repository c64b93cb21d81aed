package client

import (
	"context"
	"net/http"
	"net/url"
)

// SCIM calls, as an identity provider's SCIM client makes them (docs/scim.md):
// the client's token must be a provisioning token (scim tokens create).

// SCIMUser is the part of a SCIM user Rampart keeps.
type SCIMUser struct {
	Schemas    []string    `json:"schemas,omitempty"`
	ID         string      `json:"id,omitempty"`
	UserName   string      `json:"userName"`
	ExternalID string      `json:"externalId,omitempty"`
	Emails     []SCIMEmail `json:"emails,omitempty"`
	Active     bool        `json:"active"`
}

// SCIMEmail is one address of a SCIM user.
type SCIMEmail struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

const (
	scimUserSchema = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// SCIMCreateUser creates (or links, docs/scim.md) a person (POST
// /scim/v2/Users) and returns them as stored.
func (c *Client) SCIMCreateUser(ctx context.Context, u SCIMUser) (*SCIMUser, error) {
	u.Schemas = []string{scimUserSchema}
	var out SCIMUser
	if err := c.call(ctx, request{method: http.MethodPost, path: "/scim/v2/Users", in: u, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// SCIMUser reads a person (GET /scim/v2/Users/{id}).
func (c *Client) SCIMUser(ctx context.Context, id string) (*SCIMUser, error) {
	var out SCIMUser
	if err := c.call(ctx, request{method: http.MethodGet, path: "/scim/v2/Users/" + url.PathEscape(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// SCIMSetActive deactivates (false) or re-activates a person as Okta
// does: a PATCH with no path (PATCH /scim/v2/Users/{id}).
func (c *Client) SCIMSetActive(ctx context.Context, id string, active bool) error {
	type op struct {
		Op    string          `json:"op"`
		Value map[string]bool `json:"value"`
	}
	body := struct {
		Schemas    []string `json:"schemas"`
		Operations []op     `json:"Operations"`
	}{[]string{scimPatchOp}, []op{{Op: "replace", Value: map[string]bool{"active": active}}}}
	return c.call(ctx, request{method: http.MethodPatch, path: "/scim/v2/Users/" + url.PathEscape(id), in: body})
}
