package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/rampart-ssh/rampart/api"
)

// Recording is a session's recording as the cluster sent it: Body is the
// asciicast v2 file (the caller closes it), already checked by the node
// against the SHA-256 the cluster holds for the copy it came from.
type Recording struct {
	Body io.ReadCloser
	// SHA256 is the body's SHA-256, Node the node whose copy it is.
	SHA256, Node string
	// Partial: the copy ends where the node carrying a running session was
	// lost.
	Partial bool
}

// SessionRecording downloads a session's recording from whichever node
// holds a copy (GET /v1/sessions/{id}/recording; scope admin or auditor).
// Every node is tried in turn until one answers; a refusal (4xx) ends the
// round.
func (c *Client) SessionRecording(ctx context.Context, id string) (*Recording, error) {
	var resp *http.Response
	err := c.call(ctx, request{method: http.MethodGet, path: "/v1/sessions/" + url.PathEscape(id) + "/recording",
		each: true, stopAtRefusal: true, raw: &resp})
	if err != nil {
		return nil, err
	}
	return &Recording{Body: resp.Body, SHA256: resp.Header.Get(api.RecordingSHA256Header), Node: resp.Header.Get(api.RecordingNodeHeader),
		Partial: resp.Header.Get(api.RecordingPartialHeader) == "true"}, nil
}
