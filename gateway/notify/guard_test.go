package notify

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// What people type (the reason, their name) reaches Slack as text: no
// mention, link or formatting of theirs is parsed, and no link unfurls.
func TestSlackPayloadEscapesUserText(t *testing.T) {
	r := *testRequest
	r.Requester = "<!here>"
	r.Reason = "<!channel> <https://evil.example|Approve here> & `x` *now*"
	n := New(context.Background(), Config{Command: "ssh bastion"}, &fakeAudit{}, nil)
	body, err := n.payload(&r, raftstore.RequestWebhook{Kind: raftstore.WebhookSlack}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Text        string `json:"text"`
		UnfurlLinks *bool  `json:"unfurl_links"`
		UnfurlMedia *bool  `json:"unfurl_media"`
		Blocks      []struct {
			Text struct{ Type, Text string } `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(strings.ReplaceAll(p.Text, "`ssh bastion", ""), "<>") || !strings.Contains(p.Text, "&lt;!channel&gt;") ||
		!strings.Contains(p.Text, "&lt;!here&gt;") || !strings.Contains(p.Text, "&amp;") {
		t.Errorf("text not escaped: %q", p.Text)
	}
	if p.UnfurlLinks == nil || *p.UnfurlLinks || p.UnfurlMedia == nil || *p.UnfurlMedia {
		t.Errorf("unfurling not turned off: %s", body)
	}
	for _, b := range p.Blocks {
		if (strings.Contains(b.Text.Text, r.Reason) || strings.Contains(b.Text.Text, r.Requester)) && b.Text.Type != "plain_text" {
			t.Errorf("user text in a %s block: %q", b.Text.Type, b.Text.Text)
		}
	}
	if len(p.Blocks) != 3 || !strings.Contains(p.Blocks[2].Text.Text, "`ssh bastion approve r-abcdefgh`") {
		t.Errorf("blocks %+v", p.Blocks)
	}
}

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"93.184.216.34", true}, {"2606:2800:220:1::1", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fd00:ec2::254", false}, {"fe80::1", false}, {"100.64.0.1", false}, {"0.0.0.0", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:169.254.169.254", false}, {"64:ff9b::a9fe:a9fe", false}, {"224.0.0.1", false},
	} {
		if got := publicAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("publicAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// Without AllowPrivate a webhook must be https to a public address (a name
// that resolves to loopback is refused on the socket); no redirect is
// followed; and the audit log says what kind of failure it was, never the
// address or port it met.
func TestWebhookGuard(t *testing.T) {
	var hits, redirected atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/landed", http.StatusFound)
		case "/landed":
			redirected.Add(1)
		case "/fail":
			http.Error(w, "internal detail", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer tlsSrv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(tlsSrv.URL, "https://"))
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name         string
		url          string
		allowPrivate bool
		want         string
	}{
		{"fail/plain-http", srv.URL + "/hook", false, "refused: the webhook URL is not https"},
		{"fail/loopback-address", tlsSrv.URL + "/hook", false, "refused: the webhook's address is not public"},
		{"fail/name-resolving-to-loopback", "https://localhost:" + port + "/hook", false, "refused: the webhook's address is not public"},
		{"fail/redirect-not-followed", srv.URL + "/redirect", true, "refused: redirect not followed"},
		{"fail/status-class-only", srv.URL + "/fail", true, "status 5xx"},
		{"fail/connection-without-address", "http://" + closedAddr + "/hook", true, "connection failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits.Store(0)
			audit := &fakeAudit{}
			n := New(context.Background(), Config{Backoff: time.Millisecond, AllowPrivate: tc.allowPrivate}, audit, nil)
			n.Notify(testRequest, []raftstore.RequestWebhook{{Kind: raftstore.WebhookSlack, URL: tc.url}})
			n.Close()
			if len(audit.events) != 1 || audit.events[0] != EventAccessRequestNotifyFail || audit.fields[0]["error"] != tc.want {
				t.Fatalf("audited %v %v, want a failure %q", audit.events, audit.fields, tc.want)
			}
			if !tc.allowPrivate && hits.Load() != 0 {
				t.Errorf("the refused webhook was reached %d times", hits.Load())
			}
			if redirected.Load() != 0 {
				t.Errorf("redirect followed")
			}
		})
	}
}
