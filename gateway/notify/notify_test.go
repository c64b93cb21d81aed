package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

type fakeAudit struct {
	mu     sync.Mutex
	events []string
	fields []map[string]string
}

func (a *fakeAudit) Record(_ context.Context, typ, _ string, f map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, typ)
	a.fields = append(a.fields, f)
	return nil
}

var testRequest = &raftstore.AccessRequest{ID: "r-abcdefgh", Project: "web", Requester: "alice", Login: "alice", Reason: "incident 42",
	Duration: 2 * time.Hour, Needed: 1, State: raftstore.RequestPending}

// The generic payload carries the request, its reason and the exact
// approve command, signed with HMAC-SHA256 of the body; the Slack one is an
// incoming-webhook text; a webhook that fails is retried until it answers,
// and both outcomes are audited without the URL's secret path.
func TestWebhooks(t *testing.T) {
	const secret = "a-long-shared-secret"
	var mu sync.Mutex
	var jsonBodies [][]byte
	var slackBodies []map[string]any
	failures := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/hook/json":
			if got := r.Header.Get(SignatureHeader); !hmac.Equal([]byte(got), []byte(Sign(secret, body))) {
				t.Errorf("signature %q does not match the body", got)
			}
			jsonBodies = append(jsonBodies, body)
		case "/services/T0/B0/slacksecret":
			if failures > 0 {
				failures--
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("slack body: %v", err)
			}
			slackBodies = append(slackBodies, m)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	audit := &fakeAudit{}
	n := New(context.Background(), Config{Command: "ssh bastion", Backoff: time.Millisecond, AllowPrivate: true}, audit, nil)
	n.Notify(testRequest, []raftstore.RequestWebhook{
		{Kind: raftstore.WebhookJSON, URL: srv.URL + "/hook/json", Secret: secret},
		{Kind: raftstore.WebhookSlack, URL: srv.URL + "/services/T0/B0/slacksecret"},
		{Kind: raftstore.WebhookSlack, URL: srv.URL + "/gone"},
	})
	n.Close()

	if len(jsonBodies) != 1 {
		t.Fatalf("%d JSON deliveries", len(jsonBodies))
	}
	var p Payload
	if err := json.Unmarshal(jsonBodies[0], &p); err != nil {
		t.Fatal(err)
	}
	if p.Request.ID != "r-abcdefgh" || p.Request.Reason != "incident 42" || p.ApproveCommand != "ssh bastion approve r-abcdefgh" || p.Type != "access_request.create" {
		t.Errorf("payload %+v", p)
	}
	if len(slackBodies) != 1 || !strings.Contains(slackBodies[0]["text"].(string), "ssh bastion approve r-abcdefgh") || !strings.Contains(slackBodies[0]["text"].(string), "incident 42") {
		t.Errorf("slack payloads %v", slackBodies)
	}
	got := map[string]int{}
	for i, typ := range audit.events {
		got[typ]++
		if strings.Contains(audit.fields[i]["target"], "slacksecret") || strings.Contains(audit.fields[i]["error"], "slacksecret") {
			t.Errorf("audit event holds the webhook's secret path: %v", audit.fields[i])
		}
	}
	if got[EventAccessRequestNotify] != 2 || got[EventAccessRequestNotifyFail] != 1 {
		t.Errorf("audited %v", audit.events)
	}
	for i, f := range audit.fields {
		if audit.events[i] == EventAccessRequestNotifyFail && f["attempts"] != "4" {
			t.Errorf("failed delivery tried %s times", f["attempts"])
		}
	}
}
