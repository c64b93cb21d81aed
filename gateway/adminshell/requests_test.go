package adminshell

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The command line that reaches the log and the audit log never holds a
// webhook's secret or URL.
func TestDisplayArgsRedactsWebhookSecrets(t *testing.T) {
	got := displayArgs([]string{"requests", "policy", "web", "--approvers", "leads", "--secret", "s3cr3t-of-the-hook",
		"--slack", "https://hooks.slack.com/services/T0/B0/xyz", "--webhook=https://example.com/hook?token=abc"})
	for _, leak := range []string{"s3cr3t", "/services/", "token=abc"} {
		if strings.Contains(got, leak) {
			t.Errorf("displayed %q holds %q", got, leak)
		}
	}
	if !strings.Contains(got, "--approvers leads") {
		t.Errorf("displayed %q lost the other flags", got)
	}
}

// requests policy sets the policy (secrets unshown), and requests approve,
// deny and revoke decide as an administrator: never their own request,
// deny and revoke only with a reason, each change audited.
func TestRequestsCommands(t *testing.T) {
	h := newHarness(t)
	out := h.mustRun("requests", "policy", "web", "--approvers", "leads", "--approvals", "2", "--max", "4h",
		"--window", "mon-fri 09:00-18:00", "--webhook", "https://hooks.example.com/rampart/xyz", "--secret", "0123456789abcdef-secret")
	if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, "/rampart/xyz") || !strings.Contains(out, "json hooks.example.com") {
		t.Errorf("policy shown as:\n%s", out)
	}
	if typ := h.lastAudit().Type; typ != control.EventProjectUpdate {
		t.Errorf("policy change audited as %s", typ)
	}
	if strings.Contains(h.lastAudit().Fields["command"], "0123456789abcdef") {
		t.Errorf("audited command line holds the secret: %q", h.lastAudit().Fields["command"])
	}
	// testNow is a Sunday: outside the window.
	h.mustRun("requests", "policy", "web", "--replace", "--approvers", "leads", "--approvals", "2")
	h.apply(&raftstore.AccessRequestCreate{ID: "r-bobbbbbb", Project: "web", UserID: "sub-bob", Reason: "deploy", Duration: time.Hour, Now: h.now})
	h.apply(&raftstore.AccessRequestCreate{ID: "r-aliceeee", Project: "web", UserID: "sub-alice", Reason: "mine", Duration: time.Hour, Now: h.now})

	if r := h.run("requests", "approve", "r-aliceeee"); r.code == ExitOK || !strings.Contains(r.stderr, "your own request") {
		t.Errorf("approving her own: %s", r)
	}
	out = h.mustRun("requests", "approve", "r-bobbbbbb")
	if !strings.Contains(out, "approval of r-bobbbbbb recorded (1 of 2)") {
		t.Errorf("first of two approvals: %q", out)
	}
	if r := h.run("requests", "approve", "r-bobbbbbb"); r.code == ExitOK || !strings.Contains(r.stderr, "another approver") {
		t.Errorf("second approval by the same admin: %s", r)
	}
	if r := h.run("requests", "deny", "r-aliceeee"); r.code == ExitOK || !strings.Contains(r.stderr, "--reason") {
		t.Errorf("deny without a reason: %s", r)
	}
	h.actor = Actor{Login: "carol", UserID: "sub-carol"}
	out = h.mustRun("requests", "deny", "r-aliceeee", "--reason", "not now")
	if ev := h.lastAudit(); ev.Type != "access_request.deny" || ev.Fields["reason"] != "not now" || ev.Fields["request"] != "r-aliceeee" {
		t.Errorf("deny audited as %+v", ev)
	}
	// A second administrator's approval completes the two.
	if out := h.mustRun("requests", "approve", "r-bobbbbbb"); !strings.Contains(out, "approved r-bobbbbbb: bob may reach project web until") {
		t.Errorf("second approval: %q", out)
	}
	if out := h.mustRun("users", "show", "bob"); !strings.Contains(out, "r-bobbbbbb: project web as bob until") {
		t.Errorf("users show bob does not show the request:\n%s", out)
	}
	ls := decodeJSON[[]requestView](t, h.mustRun("requests", "ls", "--json"))
	states := map[string]string{}
	for _, r := range ls {
		states[r.ID] = r.State
	}
	if states["r-bobbbbbb"] != "approved" || states["r-aliceeee"] != "denied" {
		t.Errorf("requests ls: %+v", ls)
	}
}

// requests policy with some flags changes those settings and keeps the
// others; --replace sets the whole policy.
func TestRequestsPolicyMerges(t *testing.T) {
	h := newHarness(t)
	h.mustRun("requests", "policy", "web", "--approvers", "leads", "--approvals", "2", "--max", "4h", "--requesters", "eng",
		"--window", "mon-fri 09:00-18:00", "--slack", "https://hooks.example.com/s", "--webhook", "https://hooks.example.com/j", "--secret", "0123456789abcdef-secret")
	policy := func() *raftstore.RequestPolicy {
		_, p, err := h.store.State().ProjectByName(nil, "web")
		if err != nil || p == nil {
			t.Fatalf("project web: %v", err)
		}
		return p.Settings.Requests
	}
	h.mustRun("requests", "policy", "web", "--max", "2h")
	pol := policy()
	if pol.MaxDuration != 2*time.Hour || pol.Approvals != 2 || !slices.Equal(pol.Approvers, []string{"leads"}) || !slices.Equal(pol.Requesters, []string{"eng"}) ||
		len(pol.Windows) != 1 || len(pol.Webhooks) != 2 {
		t.Fatalf("--max alone changed more: %+v", pol)
	}
	h.mustRun("requests", "policy", "web", "--slack", "https://hooks.example.com/s2")
	if pol := policy(); len(pol.Webhooks) != 2 || !slices.ContainsFunc(pol.Webhooks, func(w raftstore.RequestWebhook) bool { return w.URL == "https://hooks.example.com/s2" }) ||
		!slices.ContainsFunc(pol.Webhooks, func(w raftstore.RequestWebhook) bool { return w.URL == "https://hooks.example.com/j" && w.Secret != "" }) {
		t.Fatalf("--slack replaced more than the slack webhook: %+v", pol.Webhooks)
	}
	h.mustRun("requests", "policy", "web", "--replace", "--approvers", "leads")
	if pol := policy(); pol.MaxDuration != raftstore.DefaultRequestMaxDuration || pol.Approvals != 1 || pol.Requesters != nil || pol.Windows != nil || pol.Webhooks != nil {
		t.Fatalf("--replace kept settings: %+v", pol)
	}
}
