package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditExportConfig reads sinks from a file as an operator writes them,
// and lists every problem of a bad one.
func TestAuditExportConfig(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "hec.token")
	if err := os.WriteFile(tok, []byte("secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("kek_file: /k\nlisten: {api: \"127.0.0.1:8443\", raft: \"127.0.0.1:8300\"}\noidc:\n  issuer: https://idp.example.com\n  client_id: rampart\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `audit_export:
  retry_max: 30s
  sinks:
    - {name: f, type: file, path: /var/log/rampart/audit.jsonl}
    - {name: s, type: syslog, address: "siem:6514", tls: true, facility: 0}
    - {name: h, type: splunk_hec, url: "https://splunk:8088", token_file: `+tok+`}
`)
	c, err := loadWith(t, []string{"-c", good}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ae := c.AuditExport
	if len(ae.Sinks) != 3 || ae.BatchSize != 500 || ae.RetryMin != time.Second || ae.RetryMax != 30*time.Second ||
		ae.Sinks[1].Facility == nil || *ae.Sinks[1].Facility != 0 || !ae.Sinks[1].TLS || ae.Sinks[2].TokenFile != tok {
		t.Fatalf("read as %+v", ae)
	}
	bad := write("bad.yaml", `audit_export:
  batch_size: 0
  sinks:
    - {name: f, type: file, path: relative.jsonl}
    - {name: f, type: syslog, address: nohost, framing: newline, tls: true}
    - {name: h, type: splunk_hec, url: "http://splunk:8088", token_env: RAMPART_TEST_UNSET_TOKEN}
    - {name: w, type: webhook, url: "https://x", hmac_key_file: /nonexistent, hmac_key_env: X}
    - {name: Bad, type: kafka}
`)
	_, err = loadWith(t, []string{"-c", bad}, nil)
	if err == nil {
		t.Fatal("a bad audit_export was accepted")
	}
	for _, want := range []string{"audit_export: batch_size 0", "sinks[f].path", "sinks[f]: two sinks", "sinks[f].address", "sinks[f].framing newline",
		"sinks[h].url", "sinks[h].token: empty", "sinks[w].set one of hmac_key_file and hmac_key_env", `sinks[4].name "Bad"`, `sinks[4].type "kafka"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Error("a secret is in the error")
	}
}
