package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// The administrator's lists and changes of users, sessions, the audit log,
// tokens and CA keys (docs/api.md). Each needs a service token whose scope
// reaches the route.

// ListOptions pages a list and may make it wait.
type ListOptions struct {
	// Cursor is the NextCursor of the page before; empty: the first page.
	Cursor string
	// Limit is the page size (1-1000); 0: the server's default (100).
	Limit int
	// Index, when set, waits until the data is newer than this raft index,
	// at most Wait (the server's default when 0).
	Index uint64
	Wait  time.Duration
	// Filter holds the list's own filters (?status=, ?project=, ?type=…).
	Filter url.Values
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, vs := range o.Filter {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Index > 0 {
		q.Set("index", strconv.FormatUint(o.Index, 10))
	}
	if o.Wait > 0 {
		q.Set("wait", o.Wait.String())
	}
	return q
}

func list[T any](ctx context.Context, c *Client, path string, o ListOptions) (*api.Page[T], error) {
	var p api.Page[T]
	if err := c.call(ctx, request{method: http.MethodGet, path: path, query: o.query(), out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

func get[T any](ctx context.Context, c *Client, path string) (*T, error) {
	var v T
	if err := c.call(ctx, request{method: http.MethodGet, path: path, out: &v}); err != nil {
		return nil, err
	}
	return &v, nil
}

func send[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var v T
	if err := c.call(ctx, request{method: method, path: path, in: in, out: &v}); err != nil {
		return nil, err
	}
	return &v, nil
}

// Users lists users (GET /v1/users; Filter "status").
func (c *Client) Users(ctx context.Context, o ListOptions) (*api.Page[api.User], error) {
	return list[api.User](ctx, c, "/v1/users", o)
}

// User reads a user by id or IdP login (GET /v1/users/{id}).
func (c *Client) User(ctx context.Context, ref string) (*api.User, error) {
	return get[api.User](ctx, c, "/v1/users/"+url.PathEscape(ref))
}

// DisableUser disables a user (POST /v1/users/{id}/disable).
func (c *Client) DisableUser(ctx context.Context, ref string) (*api.User, error) {
	return send[api.User](ctx, c, http.MethodPost, "/v1/users/"+url.PathEscape(ref)+"/disable", nil)
}

// EnableUser enables a disabled user (POST /v1/users/{id}/enable).
func (c *Client) EnableUser(ctx context.Context, ref string) (*api.User, error) {
	return send[api.User](ctx, c, http.MethodPost, "/v1/users/"+url.PathEscape(ref)+"/enable", nil)
}

// Groups lists groups (GET /v1/groups).
func (c *Client) Groups(ctx context.Context, o ListOptions) (*api.Page[api.Group], error) {
	return list[api.Group](ctx, c, "/v1/groups", o)
}

// Entitlements lists sudo entitlements (GET /v1/entitlements).
func (c *Client) Entitlements(ctx context.Context, o ListOptions) (*api.Page[api.Entitlement], error) {
	return list[api.Entitlement](ctx, c, "/v1/entitlements", o)
}

// Servers lists servers (GET /v1/servers; Filter "project").
func (c *Client) Servers(ctx context.Context, o ListOptions) (*api.Page[api.Server], error) {
	return list[api.Server](ctx, c, "/v1/servers", o)
}

// Server reads a server (GET /v1/servers/{id}).
func (c *Client) Server(ctx context.Context, id string) (*api.Server, error) {
	return get[api.Server](ctx, c, "/v1/servers/"+url.PathEscape(id))
}

// ProjectGrant is a grant as a project's list shows it.
type ProjectGrant struct {
	Group string   `json:"group"`
	Role  string   `json:"role"`
	Sudo  []string `json:"sudo,omitempty"`
}

// Grants lists a project's grants (GET /v1/projects/{name}/grants).
func (c *Client) Grants(ctx context.Context, project string, o ListOptions) (*api.Page[ProjectGrant], error) {
	return list[ProjectGrant](ctx, c, "/v1/projects/"+url.PathEscape(project)+"/grants", o)
}

// EnrollmentTokens lists enrollment and join tokens, hashes only (GET
// /v1/tokens; Filter "project").
func (c *Client) EnrollmentTokens(ctx context.Context, o ListOptions) (*api.Page[api.EnrollmentToken], error) {
	return list[api.EnrollmentToken](ctx, c, "/v1/tokens", o)
}

// CreateEnrollmentToken creates an enrollment token (POST /v1/tokens); its
// Token is shown this once.
func (c *Client) CreateEnrollmentToken(ctx context.Context, req api.EnrollmentTokenRequest) (*api.CreatedEnrollmentToken, error) {
	return send[api.CreatedEnrollmentToken](ctx, c, http.MethodPost, "/v1/tokens", req)
}

// RevokeEnrollmentToken revokes an enrollment or join token by its hash
// (DELETE /v1/tokens/{hash}).
func (c *Client) RevokeEnrollmentToken(ctx context.Context, hash string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(hash)})
}

// Bindings lists device bindings (GET /v1/bindings; Filter "user").
func (c *Client) Bindings(ctx context.Context, o ListOptions) (*api.Page[api.Binding], error) {
	return list[api.Binding](ctx, c, "/v1/bindings", o)
}

// RevokeBindings revokes one binding, a user's, or all (POST
// /v1/bindings/revoke) and returns how many.
func (c *Client) RevokeBindings(ctx context.Context, req api.BindingsRevoke) (int, error) {
	out, err := send[api.BindingsRevoked](ctx, c, http.MethodPost, "/v1/bindings/revoke", req)
	if err != nil {
		return 0, err
	}
	return out.Revoked, nil
}

// Sessions lists sessions (GET /v1/sessions; Filter "status", "user",
// "server", "project").
func (c *Client) Sessions(ctx context.Context, o ListOptions) (*api.Page[api.Session], error) {
	return list[api.Session](ctx, c, "/v1/sessions", o)
}

// Session reads a session (GET /v1/sessions/{id}).
func (c *Client) Session(ctx context.Context, id string) (*api.Session, error) {
	return get[api.Session](ctx, c, "/v1/sessions/"+url.PathEscape(id))
}

// KillSession ends a live session (POST /v1/sessions/{id}/kill).
func (c *Client) KillSession(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/v1/sessions/" + url.PathEscape(id) + "/kill"})
}

// Audit queries the audit log, oldest first (GET /v1/audit; Filter "since",
// "until", "type", "actor", "session", "server", "project"). With Index it
// follows the log: the answer waits for an event past that raft index.
func (c *Client) Audit(ctx context.Context, o ListOptions) (*api.Page[api.AuditEvent], error) {
	return list[api.AuditEvent](ctx, c, "/v1/audit", o)
}

// VerifyAudit checks the audit log's hash chain (GET /v1/audit/verify).
func (c *Client) VerifyAudit(ctx context.Context) (*api.AuditVerify, error) {
	return get[api.AuditVerify](ctx, c, "/v1/audit/verify")
}

// CAKeyList lists every CA key's public half and state (GET /v1/ca/keys;
// Filter "kind").
func (c *Client) CAKeyList(ctx context.Context, o ListOptions) (*api.Page[api.CAKey], error) {
	return list[api.CAKey](ctx, c, "/v1/ca/keys", o)
}

// ClusterMembers lists the raft configuration's members (GET
// /v1/cluster/members).
func (c *Client) ClusterMembers(ctx context.Context, o ListOptions) (*api.Page[api.ClusterMember], error) {
	return list[api.ClusterMember](ctx, c, "/v1/cluster/members", o)
}

// ServiceTokens lists service tokens (GET /v1/service-tokens).
func (c *Client) ServiceTokens(ctx context.Context, o ListOptions) (*api.Page[api.ServiceToken], error) {
	return list[api.ServiceToken](ctx, c, "/v1/service-tokens", o)
}

// CreateServiceToken creates a service token (POST /v1/service-tokens);
// its Token, the secret, is shown this once.
func (c *Client) CreateServiceToken(ctx context.Context, req api.ServiceTokenRequest) (*api.CreatedServiceToken, error) {
	return send[api.CreatedServiceToken](ctx, c, http.MethodPost, "/v1/service-tokens", req)
}

// RevokeServiceToken revokes a service token (DELETE
// /v1/service-tokens/{id}).
func (c *Client) RevokeServiceToken(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/v1/service-tokens/" + url.PathEscape(id)})
}
