package adminshell

import (
	"strings"
	"testing"
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
