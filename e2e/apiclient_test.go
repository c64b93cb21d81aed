package e2e

// The client of a node's HTTPS API that tests use: it trusts the cluster CA
// (no skipped verification) and sends a bearer token.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// APIClient calls one node's HTTPS API.
type APIClient struct {
	BaseURL string
	// Token is sent as "Authorization: Bearer Token" when not empty.
	Token string
	HTTP  *http.Client
}

// APIError is a non-2xx answer of the API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// StatusOf returns the HTTP status of an APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Do sends a request with in (if not nil) as its JSON body, and decodes a 2xx
// answer into out (if not nil). A non-2xx answer is an *APIError.
func (c *APIClient) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Health calls GET /v1/health (no authentication).
func (c *APIClient) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	return &h, c.Do(ctx, http.MethodGet, "/v1/health", nil, &h)
}

// Status calls GET /v1/cluster/status.
func (c *APIClient) Status(ctx context.Context) (*raftstore.Status, error) {
	var st raftstore.Status
	return &st, c.Do(ctx, http.MethodGet, "/v1/cluster/status", nil, &st)
}

// PutProject creates or updates a project with a description and default
// settings.
func (c *APIClient) PutProject(ctx context.Context, name, description string) (*api.Project, error) {
	var p api.Project
	return &p, c.Do(ctx, http.MethodPut, "/v1/projects/"+name, &api.Project{Description: description}, &p)
}

// GetProject reads a project: consistent asks for a linearizable read, else
// the node answers from its replica (if fresh).
func (c *APIClient) GetProject(ctx context.Context, name string, consistent bool) (*api.Project, error) {
	var p api.Project
	return &p, c.Do(ctx, http.MethodGet, "/v1/projects/"+name+consistentQuery(consistent), nil, &p)
}

// Projects lists the projects.
func (c *APIClient) Projects(ctx context.Context, consistent bool) ([]api.Project, error) {
	var ps []api.Project
	return ps, c.Do(ctx, http.MethodGet, "/v1/projects"+consistentQuery(consistent), nil, &ps)
}

// RemoveMember calls DELETE /v1/cluster/members/{id}.
func (c *APIClient) RemoveMember(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/cluster/members/"+id, nil, nil)
}

func consistentQuery(consistent bool) string {
	if consistent {
		return "?consistent=true"
	}
	return ""
}
