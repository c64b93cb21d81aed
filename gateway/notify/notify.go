// Package notify tells a project's approvers of a new access request
// through its webhooks: a Slack-compatible incoming-webhook payload, or a
// generic JSON payload signed with HMAC-SHA256. Deliveries are retried,
// audited, and never hold up the request.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// Audit event types of deliveries.
const (
	EventAccessRequestNotify     = "access_request.notify"
	EventAccessRequestNotifyFail = "access_request.notify_fail"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the webhook's secret; TimestampHeader the unix time it was sent,
// which the body repeats (sent_at) so that the signature covers it.
const (
	SignatureHeader = "X-Rampart-Signature"
	TimestampHeader = "X-Rampart-Timestamp"
)

// Defaults of Config.
const (
	DefaultAttempts = 4
	DefaultBackoff  = time.Second
	DefaultTimeout  = 10 * time.Second
)

// Auditor writes an audit event (control.StoreAuditor).
type Auditor interface {
	Record(ctx context.Context, typ, actor string, fields map[string]string) error
}

// Config configures a Notifier.
type Config struct {
	// Command is how a person runs a command on the bastion ("ssh
	// bastion"): the payloads carry the exact approve and deny commands.
	Command string
	// Attempts per webhook (DefaultAttempts) and the first wait between
	// two (DefaultBackoff, doubled each time).
	Attempts int
	Backoff  time.Duration
	// AllowPrivate lets webhooks be plain http and reach loopback, private
	// and link-local addresses (config access_requests.allow_private_webhooks;
	// for tests and closed labs). Without it see guard.go.
	AllowPrivate bool
	// Client posts the payloads; nil: newClient(AllowPrivate), which
	// checks each address it connects to and follows no redirect.
	Client *http.Client
	Now    func() time.Time
}

// Notifier delivers notifications in the background, each webhook on its
// own; Close waits for those under way.
type Notifier struct {
	cfg    Config
	ctx    context.Context
	audit  Auditor
	logger *slog.Logger
	wg     sync.WaitGroup
}

// New returns a notifier whose deliveries stop when ctx ends.
func New(ctx context.Context, cfg Config, audit Auditor, logger *slog.Logger) *Notifier {
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Client == nil {
		cfg.Client = newClient(cfg.AllowPrivate)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Command == "" {
		cfg.Command = "ssh bastion"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, ctx: ctx, audit: audit, logger: logger}
}

// Close waits for the deliveries under way (they end with the context).
func (n *Notifier) Close() { n.wg.Wait() }

// Notify delivers r to each hook in the background and returns at once.
func (n *Notifier) Notify(r *raftstore.AccessRequest, hooks []raftstore.RequestWebhook) {
	cp := *r
	for _, h := range hooks {
		n.wg.Go(func() { n.deliver(&cp, h) })
	}
}

// Payload is the generic JSON notification.
type Payload struct {
	Type    string  `json:"type"`
	Request Request `json:"request"`
	// ApproveCommand and DenyCommand are what an approver types.
	ApproveCommand string `json:"approve_command"`
	DenyCommand    string `json:"deny_command"`
	SentAt         int64  `json:"sent_at"`
}

// Request is the request as a notification shows it.
type Request struct {
	ID              string    `json:"id"`
	Project         string    `json:"project"`
	Requester       string    `json:"requester"`
	Login           string    `json:"login"`
	Reason          string    `json:"reason"`
	Duration        string    `json:"duration"`
	ApprovalsNeeded int       `json:"approvals_needed"`
	CreatedAt       time.Time `json:"created_at"`
	PendingUntil    time.Time `json:"pending_until"`
}

// slackPayload is an incoming-webhook message: text is the notification's
// fallback, with what people typed escaped; blocks show it as plain text,
// which Slack does not parse for mentions, links or formatting. Links are
// not unfurled.
type slackPayload struct {
	Text        string       `json:"text"`
	Blocks      []slackBlock `json:"blocks"`
	UnfurlLinks bool         `json:"unfurl_links"`
	UnfurlMedia bool         `json:"unfurl_media"`
}

type slackBlock struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
}

type slackText struct {
	Type string `json:"type"` // plain_text or mrkdwn
	Text string `json:"text"`
}

// payloadType is the generic webhook payload's type: the request was made
// (the same name as its audit event, gateway/control).
const payloadType = "access_request.create"

// slackEscape escapes the three characters Slack's message text gives a
// meaning to (<!channel>, <https://…|label>, &lt;).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackCode puts s in a code span: escaped, and without backticks, which
// would end the span.
func slackCode(s string) string {
	return "`" + slackEscape.Replace(strings.ReplaceAll(s, "`", "'")) + "`"
}

func (n *Notifier) slack(r *raftstore.AccessRequest, approve, deny string) slackPayload {
	what := fmt.Sprintf("%s asks for access to project %s as %s for %s (request %s)", r.Requester, r.Project, r.Login, r.Duration, r.ID)
	commands := fmt.Sprintf("Approve: %s\nDeny: %s", slackCode(approve), slackCode(deny))
	return slackPayload{
		Text: slackEscape.Replace(what) + ": " + slackCode(r.Reason) + "\n" + commands,
		Blocks: []slackBlock{
			{Type: "section", Text: slackText{Type: "plain_text", Text: what}},
			{Type: "section", Text: slackText{Type: "plain_text", Text: "Reason: " + r.Reason}},
			{Type: "section", Text: slackText{Type: "mrkdwn", Text: commands}},
		},
	}
}

func (n *Notifier) payload(r *raftstore.AccessRequest, h raftstore.RequestWebhook, now time.Time) ([]byte, error) {
	approve := n.cfg.Command + " approve " + r.ID
	deny := n.cfg.Command + " deny " + r.ID + ` --reason "..."`
	if h.Kind == raftstore.WebhookSlack {
		return json.Marshal(n.slack(r, approve, deny))
	}
	return json.Marshal(Payload{Type: payloadType, ApproveCommand: approve, DenyCommand: deny, SentAt: now.Unix(),
		Request: Request{ID: r.ID, Project: r.Project, Requester: r.Requester, Login: r.Login, Reason: r.Reason, Duration: r.Duration.String(),
			ApprovalsNeeded: r.Needed, CreatedAt: r.CreatedAt, PendingUntil: r.PendingUntil}})
}

// Sign is the signature header value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// target names a webhook in logs and the audit log without its path or
// query, which often hold its secret (Slack's do).
func target(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

func (n *Notifier) deliver(r *raftstore.AccessRequest, h raftstore.RequestWebhook) {
	fields := map[string]string{"request": r.ID, "project": r.Project, "kind": h.Kind, "target": target(h.URL)}
	wait := n.cfg.Backoff
	var lastErr error
	attempt := 0
	for attempt = 1; attempt <= n.cfg.Attempts; attempt++ {
		if lastErr = n.post(r, h); lastErr == nil {
			break
		}
		n.logger.Warn("access request notification failed", "request", r.ID, "project", r.Project, "target", fields["target"], "attempt", attempt, "err", lastErr)
		if attempt == n.cfg.Attempts || refused(lastErr) {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			lastErr = fmt.Errorf("%w: %w", errStopping, lastErr)
			attempt = n.cfg.Attempts
		case <-t.C:
		}
		wait *= 2
	}
	typ := EventAccessRequestNotify
	fields["attempts"] = strconv.Itoa(min(attempt, n.cfg.Attempts))
	if lastErr != nil {
		typ = EventAccessRequestNotifyFail
		fields["error"] = auditText(lastErr)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(n.ctx), 15*time.Second)
	defer cancel()
	if err := n.audit.Record(actx, typ, "rampart", fields); err != nil {
		n.logger.Error("access request notification not audited", "request", r.ID, "type", typ, "err", err)
	}
}

// post sends one attempt; an answer other than 2xx is a failure.
func (n *Notifier) post(r *raftstore.AccessRequest, h raftstore.RequestWebhook) error {
	if err := checkURL(h.URL, n.cfg.AllowPrivate); err != nil {
		return err
	}
	now := n.cfg.Now()
	body, err := n.payload(r, h, now)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, DefaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Kind == raftstore.WebhookJSON {
		req.Header.Set(SignatureHeader, Sign(h.Secret, body))
		req.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL, which may hold a secret: say only what
		// failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("post to %s: %w", target(h.URL), ue.Err)
		}
		return fmt.Errorf("post to %s failed", target(h.URL))
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		return fmt.Errorf("post to %s: %w (status %d)", target(h.URL), errRedirect, resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post to %s: %w", target(h.URL), &statusError{code: resp.StatusCode})
	}
	return nil
}
