package raftstore

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Limits and defaults of a project's access-request policy.
const (
	// DefaultRequestMaxDuration is how long an approved request may last
	// when the policy names no maximum.
	DefaultRequestMaxDuration = 8 * time.Hour
	// MaxRequestMaxDuration bounds what a policy may allow.
	MaxRequestMaxDuration = 7 * 24 * time.Hour
	// RequestPendingTTL is how long a request waits for its approvals
	// before it expires unapproved.
	RequestPendingTTL  = 24 * time.Hour
	maxRequestWebhooks = 8
	maxRequestWindows  = 14
	maxWebhookURLLen   = 2048
)

// Webhook kinds.
const (
	// WebhookSlack posts a Slack-compatible incoming-webhook payload.
	WebhookSlack = "slack"
	// WebhookJSON posts the request as JSON signed with HMAC-SHA256 of the
	// body under Secret (header X-Rampart-Signature: sha256=<hex>).
	WebhookJSON = "json"
)

// RequestWebhook is where approvers of a project are told of a new request.
type RequestWebhook struct {
	Kind string
	URL  string
	// Secret keys the HMAC of a json webhook; never shown or logged.
	Secret string `json:",omitempty"`
}

// RequestWindow is a weekly time window in which requests may be made:
// Days is a range or list of weekdays ("mon-fri", "sat,sun"), Start and End
// are "15:04" in Location (an IANA zone; empty means UTC). End before
// Start runs past midnight.
type RequestWindow struct {
	Days     string
	Start    string
	End      string
	Location string `json:",omitempty"`
}

// RequestPolicy is how a project lets people ask for just-in-time access.
// A project without one takes no requests.
type RequestPolicy struct {
	// Requesters are the groups whose members may request; empty means
	// any signed-in person.
	Requesters []string `json:",omitempty"`
	// Approvers are the groups whose members may approve or deny.
	Approvers []string
	// Approvals is how many different people must approve: 1 or 2 (0 is
	// 1).
	Approvals int `json:",omitempty"`
	// MaxDuration bounds a request's window; 0 is DefaultRequestMaxDuration.
	MaxDuration time.Duration `json:",omitempty"`
	// Windows, when set, are the only weekly times requests are taken.
	Windows  []RequestWindow  `json:",omitempty"`
	Webhooks []RequestWebhook `json:",omitempty"`
}

// EffectiveMaxDuration is MaxDuration with the default applied.
func (p *RequestPolicy) EffectiveMaxDuration() time.Duration {
	if p.MaxDuration == 0 {
		return DefaultRequestMaxDuration
	}
	return p.MaxDuration
}

// EffectiveApprovals is Approvals with the default applied.
func (p *RequestPolicy) EffectiveApprovals() int {
	if p.Approvals == 0 {
		return 1
	}
	return p.Approvals
}

// MayRequest reports whether a member of groups may request.
func (p *RequestPolicy) MayRequest(groups []string) bool {
	return len(p.Requesters) == 0 || intersects(p.Requesters, groups)
}

// MayApprove reports whether a member of groups may approve.
func (p *RequestPolicy) MayApprove(groups []string) bool {
	return intersects(p.Approvers, groups)
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// OpenAt reports whether t lies in one of the windows (always, without
// windows).
func (p *RequestPolicy) OpenAt(t time.Time) bool {
	if len(p.Windows) == 0 {
		return true
	}
	for _, w := range p.Windows {
		if ok, err := w.contains(t); err == nil && ok {
			return true
		}
	}
	return false
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// days parses Days into the set of weekdays it names.
func (w RequestWindow) days() (map[time.Weekday]bool, error) {
	out := map[time.Weekday]bool{}
	for part := range strings.SplitSeq(strings.ToLower(w.Days), ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, ok1 := weekdays[from]
		b, ok2 := weekdays[to]
		if !isRange {
			b, ok2 = a, ok1
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("days %q: want weekdays such as mon-fri or sat,sun", w.Days)
		}
		for d := a; ; d = (d + 1) % 7 {
			out[d] = true
			if d == b {
				break
			}
		}
	}
	return out, nil
}

func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// contains reports whether t lies in the window. A window past midnight
// belongs to the day it starts on.
func (w RequestWindow) contains(t time.Time) (bool, error) {
	days, err := w.days()
	if err != nil {
		return false, err
	}
	start, err := clockMinutes(w.Start)
	if err != nil {
		return false, err
	}
	end, err := clockMinutes(w.End)
	if err != nil {
		return false, err
	}
	loc := time.UTC
	if w.Location != "" {
		if loc, err = time.LoadLocation(w.Location); err != nil {
			return false, fmt.Errorf("location %q: %w", w.Location, err)
		}
	}
	t = t.In(loc)
	m := t.Hour()*60 + t.Minute()
	if start <= end {
		return days[t.Weekday()] && m >= start && m < end, nil
	}
	// Past midnight: the evening part is today's, the morning part
	// yesterday's.
	return days[t.Weekday()] && m >= start || days[(t.Weekday()+6)%7] && m < end, nil
}

// String is the window as the admin shell takes it: "mon-fri 09:00-18:00
// Europe/Paris".
func (w RequestWindow) String() string {
	s := w.Days + " " + w.Start + "-" + w.End
	if w.Location != "" {
		s += " " + w.Location
	}
	return s
}

// ParseRequestWindow reads "DAYS HH:MM-HH:MM [ZONE]".
func ParseRequestWindow(s string) (RequestWindow, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return RequestWindow{}, fmt.Errorf("window %q: want DAYS HH:MM-HH:MM [ZONE], e.g. mon-fri 09:00-18:00 Europe/Paris", s)
	}
	start, end, ok := strings.Cut(f[1], "-")
	if !ok {
		return RequestWindow{}, fmt.Errorf("window %q: want HH:MM-HH:MM", s)
	}
	w := RequestWindow{Days: strings.ToLower(f[0]), Start: start, End: end}
	if len(f) == 3 {
		w.Location = f[2]
	}
	if _, err := w.contains(time.Time{}); err != nil {
		return RequestWindow{}, fmt.Errorf("window %q: %w", s, err)
	}
	return w, nil
}

func (p *RequestPolicy) validate() error {
	if p == nil {
		return nil
	}
	if len(p.Approvers) == 0 {
		return invalidf("access requests: name the approver groups")
	}
	for _, g := range append(slices.Clone(p.Requesters), p.Approvers...) {
		if g == "" {
			return invalidf("access requests: a group name is empty")
		}
		if err := validText("access request group name", g, maxGroupNameLen); err != nil {
			return err
		}
	}
	if p.Approvals < 0 || p.Approvals > 2 {
		return invalidf("access requests: approvals must be 1 or 2, not %d", p.Approvals)
	}
	if p.MaxDuration < 0 || p.MaxDuration > MaxRequestMaxDuration {
		return invalidf("access requests: maximum duration %s is not between 0 and %s", p.MaxDuration, MaxRequestMaxDuration)
	}
	if len(p.Windows) > maxRequestWindows {
		return invalidf("access requests: more than %d windows", maxRequestWindows)
	}
	for _, w := range p.Windows {
		if _, err := w.contains(time.Time{}); err != nil {
			return invalidf("access requests: window %s: %v", w, err)
		}
	}
	if len(p.Webhooks) > maxRequestWebhooks {
		return invalidf("access requests: more than %d webhooks", maxRequestWebhooks)
	}
	for _, h := range p.Webhooks {
		if h.Kind != WebhookSlack && h.Kind != WebhookJSON {
			return invalidf("access requests: webhook kind %q is not slack or json", h.Kind)
		}
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(h.URL) > maxWebhookURLLen || hasControlRune(h.URL) {
			return invalidf("access requests: webhook URL is not an http(s) URL")
		}
		if h.Kind == WebhookJSON && len(h.Secret) < 16 {
			return invalidf("access requests: a json webhook needs a secret of at least 16 characters")
		}
		if err := validText("webhook secret", h.Secret, 256); err != nil {
			return err
		}
	}
	return nil
}

func (p *RequestPolicy) equal(o *RequestPolicy) bool {
	if p == nil || o == nil {
		return p == o
	}
	return slices.Equal(p.Requesters, o.Requesters) && slices.Equal(p.Approvers, o.Approvers) && p.Approvals == o.Approvals &&
		p.MaxDuration == o.MaxDuration && slices.Equal(p.Windows, o.Windows) && slices.Equal(p.Webhooks, o.Webhooks)
}

// Clone is a deep copy.
func (p *RequestPolicy) Clone() *RequestPolicy {
	if p == nil {
		return nil
	}
	c := *p
	c.Requesters = slices.Clone(p.Requesters)
	c.Approvers = slices.Clone(p.Approvers)
	c.Windows = slices.Clone(p.Windows)
	c.Webhooks = slices.Clone(p.Webhooks)
	return &c
}
