package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// Enroll enrolls a server (POST /v1/agents/enroll), asking each node once
// until one answers. With WithPin, the CA in the answer must be the pinned
// one (ErrPinMismatch otherwise).
func (c *Client) Enroll(ctx context.Context, req *api.EnrollRequest) (*api.EnrollResponse, error) {
	var resp api.EnrollResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/agents/enroll", in: req, out: &resp, each: true}); err != nil {
		return nil, err
	}
	if c.pin != "" {
		if err := checkCAPin(resp.CAPEM, c.pin); err != nil {
			return nil, err
		}
	}
	return &resp, nil
}

// StateQuery is a blocking read of an agent's state.
type StateQuery struct {
	// Index: answer only with a state newer than it (0: at once).
	Index uint64
	// Wait is how long the node may hold the request for a newer state.
	Wait time.Duration
	// Applied, when not 0, reports the index of the newest state the agent
	// has applied (api.AgentAppliedParam).
	Applied uint64
}

// AgentState long-polls the agent's desired state (GET
// /v1/agents/state?index=&wait=) at the current node only: the agent's
// pull loop moves between nodes and backs off itself. Give the client a
// timeout longer than the wait.
func (c *Client) AgentState(ctx context.Context, q StateQuery) (*api.AgentState, error) {
	v := url.Values{"index": {strconv.FormatUint(q.Index, 10)}, "wait": {q.Wait.String()}}
	if q.Applied > 0 {
		v.Set(api.AgentAppliedParam, strconv.FormatUint(q.Applied, 10))
	}
	var st api.AgentState
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/agents/state", query: v, out: &st}); err != nil {
		return nil, err
	}
	return &st, nil
}

// RenewAgentCert asks for a certificate for a new agent key (POST
// /v1/agents/renew), each node once, but stops at a refusal (4xx): the
// cluster has then not recorded the key and never will, and another node
// would refuse it too.
func (c *Client) RenewAgentCert(ctx context.Context, req *api.AgentRenewRequest) (*api.AgentRenewResponse, error) {
	var resp api.AgentRenewResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/agents/renew", in: req, out: &resp, each: true, stopAtRefusal: true}); err != nil {
		return nil, err
	}
	return &resp, nil
}

// RenewHostCerts asks for the server's host certificates again (POST
// /v1/agents/hostcerts), each node once until one answers.
func (c *Client) RenewHostCerts(ctx context.Context) (*api.AgentHostCertsResponse, error) {
	var resp api.AgentHostCertsResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/agents/hostcerts", out: &resp, each: true}); err != nil {
		return nil, err
	}
	return &resp, nil
}

// PostEvents delivers a batch of login events (POST /v1/agents/events) to
// the current node only: the event sender retries with backoff itself. An
// empty batch asks for the last seq the cluster recorded (it is sent as
// [], never null).
func (c *Client) PostEvents(ctx context.Context, events []api.LoginEvent) (*api.AgentEventsResponse, error) {
	if events == nil {
		events = []api.LoginEvent{}
	}
	var resp api.AgentEventsResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/agents/events", in: api.AgentEventsRequest{Events: events}, out: &resp}); err != nil {
		return nil, err
	}
	return &resp, nil
}
