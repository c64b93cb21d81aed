package auditexport

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// HECPath is where Splunk's HTTP Event Collector takes JSON events.
const HECPath = "/services/collector/event"

// The webhook's headers: the time it was signed (Unix seconds) and the
// signature, "sha256=" and the hex HMAC-SHA256, under the shared key, of
// the timestamp, a dot and the body.
const (
	HeaderTimestamp = "X-Rampart-Timestamp"
	HeaderSignature = "X-Rampart-Signature"
)

// httpPost posts body and wants a 2xx; the error carries the status only,
// never the response body (a receiver may echo what it was sent).
func httpPost(ctx context.Context, c *http.Client, to string, body []byte, hdr http.Header, what string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rampartd-audit-export")
	resp, err := c.Do(req)
	if err != nil {
		// Not the URL: its query may hold a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 3 {
		// Not the Location either: like the URL, it may hold a secret.
		return fmt.Errorf("%s: answered %s, and redirects are not followed: set the sink's url to where the receiver is", what, resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: answered %s", what, resp.Status)
	}
	return nil
}

// newHTTPClient follows no redirect: it would send the token (HEC) or the
// signed batch (webhook) again, perhaps over plain http or to another host.
func newHTTPClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// HECSink posts batches to a Splunk HTTP Event Collector: one request per
// batch, its body the events' JSON objects one after the other, each
// {"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"event":{record}},
// with Authorization: Splunk <token>. A 200 is HEC's acknowledgement.
type HECSink struct {
	url                      string
	token                    string
	host, source, sourceType string
	index                    string
	client                   *http.Client
}

// NewHECSink returns a sink posting to baseURL + HECPath.
func NewHECSink(baseURL, token, host, source, sourceType, index string, tlsCfg *tls.Config, timeout time.Duration) *HECSink {
	return &HECSink{url: strings.TrimSuffix(baseURL, "/") + HECPath, token: token, host: host, source: source,
		sourceType: sourceType, index: index, client: newHTTPClient(tlsCfg, timeout)}
}

// HECEvent is one event of a HEC request.
type HECEvent struct {
	Time       float64 `json:"time"`
	Host       string  `json:"host,omitempty"`
	Source     string  `json:"source,omitempty"`
	SourceType string  `json:"sourcetype,omitempty"`
	Index      string  `json:"index,omitempty"`
	Event      Record  `json:"event"`
}

// Send posts the batch.
func (s *HECSink) Send(ctx context.Context, batch []*raftstore.AuditEvent) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range batch {
		ev := HECEvent{Time: float64(e.Time.UnixMicro()) / 1e6, Host: s.host, Source: s.source, SourceType: s.sourceType,
			Index: s.index, Event: NewRecord(e)}
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("splunk hec: encode: %w", err)
		}
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Splunk "+s.token)
	return httpPost(ctx, s.client, s.url, body.Bytes(), hdr, "splunk hec")
}

// Close drops idle connections.
func (s *HECSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// WebhookSink posts batches as {"events":[record, …]} to an HTTPS URL,
// signed with a shared key (HeaderTimestamp, HeaderSignature). A 2xx
// acknowledges the batch.
type WebhookSink struct {
	url    string
	key    []byte
	now    func() time.Time
	client *http.Client
}

// NewWebhookSink returns a sink posting to url.
func NewWebhookSink(url string, key []byte, tlsCfg *tls.Config, timeout time.Duration, now func() time.Time) *WebhookSink {
	return &WebhookSink{url: url, key: key, now: now, client: newHTTPClient(tlsCfg, timeout)}
}

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	Events []Record `json:"events"`
}

// Send posts the batch.
func (s *WebhookSink) Send(ctx context.Context, batch []*raftstore.AuditEvent) error {
	b := WebhookBody{Events: make([]Record, len(batch))}
	for i, e := range batch {
		b.Events[i] = NewRecord(e)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	hdr := http.Header{}
	hdr.Set(HeaderTimestamp, ts)
	hdr.Set(HeaderSignature, WebhookSignature(s.key, ts, body))
	return httpPost(ctx, s.client, s.url, body, hdr, "webhook")
}

// WebhookSignature is the value of HeaderSignature for a timestamp and body.
func WebhookSignature(key []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Close drops idle connections.
func (s *WebhookSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
