package e2e

// An auditor with no shell on the cluster exports a recording: alice runs a
// command on web-1 through the bastion (real OpenSSH, sshd), and
// `rampart recordings export` fetches its recording through the HTTPS API
// with an auditor service token, as asciicast (the bytes whose SHA-256 the
// API reports) and as one JSON document; a read token is refused with a
// message that names the scope it needs.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

func TestRecordingsExport(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{Recording: new(true)}, false)
	if r := e.ssh(t, nil, "alice@web-1", "echo export-$((6*7))"); r.code != 0 || strings.TrimSpace(r.stdout) != "export-42" {
		t.Fatalf("ssh: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	s := sessionOf(t, e.node.Node, "closed", true, nil)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	auditor, err := e.api().CreateServiceToken(ctx, api.ServiceTokenRequest{Name: "export-auditor", Scope: "auditor"})
	fatalIf(t, err, "auditor token")
	reader, err := e.api().CreateServiceToken(ctx, api.ServiceTokenRequest{Name: "export-read", Scope: "read"})
	fatalIf(t, err, "read token")
	caPEM, err := os.ReadFile(filepath.Join(e.node.DataDir, "tls", "ca.crt"))
	fatalIf(t, err)
	target := []string{"--api", e.node.APIAddr(), "--ca-fingerprint", pinOf(t, caPEM)}

	h := newCLIHome(t)
	// run is `rampart recordings export` with the token in $RAMPART_TOKEN.
	run := func(token string, args ...string) sshResult {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), sshTimeout)
		defer ccancel()
		cmd, stdout, stderr := h.command(cctx, t, append([]string{"rampart", "recordings", "export", s.ID}, append(args, target...)...)...)
		cmd.Env = append(cmd.Env, "RAMPART_TOKEN="+token)
		err := cmd.Run()
		if err != nil && cmd.ProcessState == nil {
			t.Fatalf("run rampart: %v", err)
		}
		r := sshResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
		for _, tok := range []string{auditor.Token, reader.Token} {
			if strings.Contains(r.stdout+r.stderr, tok) {
				t.Fatal("rampart printed a service token")
			}
		}
		return r
	}

	t0 := time.Now()
	r := run(auditor.Token, "--format", "asciicast")
	t.Logf("export as asciicast: %s", time.Since(t0).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("export as asciicast: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if got := sha256Hex([]byte(r.stdout)); got != s.Recording {
		t.Fatalf("the exported asciicast's SHA-256 is %s, the API reports %s", got, s.Recording)
	}
	if !strings.Contains(r.stdout, "export-42") || !strings.HasPrefix(r.stdout, `{"version":2`) {
		t.Fatalf("exported asciicast:\n%s", r.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")

	// json, to a file, with the token from --token-file.
	tokFile := filepath.Join(t.TempDir(), "token")
	fatalIf(t, os.WriteFile(tokFile, []byte(auditor.Token+"\n"), 0o600))
	out := filepath.Join(t.TempDir(), "rec.json")
	if r := run("", "--format", "json", "-o", out, "--token-file", tokFile); r.code != 0 || r.stdout != "" {
		t.Fatalf("export as json: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(out)
	fatalIf(t, err)
	var doc struct {
		Session string            `json:"session"`
		SHA256  string            `json:"sha256"`
		Partial bool              `json:"partial"`
		Header  map[string]any    `json:"header"`
		Events  []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the json export is not JSON: %v\n%s", err, b)
	}
	if doc.Session != s.ID || doc.SHA256 != s.Recording || doc.Partial || doc.Header["version"] != float64(2) || len(doc.Events) != len(lines)-1 {
		t.Fatalf("json export: session %s sha %s partial %v header %v, %d events (the cast has %d)", doc.Session, doc.SHA256, doc.Partial, doc.Header, len(doc.Events), len(lines)-1)
	}
	var header map[string]any
	fatalIf(t, json.Unmarshal([]byte(lines[0]), &header))
	for i, ev := range doc.Events {
		var want, got []any
		fatalIf(t, json.Unmarshal([]byte(lines[i+1]), &want))
		fatalIf(t, json.Unmarshal(ev, &got))
		if len(got) != 3 || len(want) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("event %d: %s, the cast has %s", i, ev, lines[i+1])
		}
	}
	if header["width"] != doc.Header["width"] || header["timestamp"] != doc.Header["timestamp"] {
		t.Fatalf("json header %v, the cast's %v", doc.Header, header)
	}

	// A read token reaches sessions but not what they showed.
	r = run(reader.Token)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "cannot read recordings: use a token of scope auditor or admin") {
		t.Fatalf("export with a read token: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// No token at all: a usage error naming where a token comes from.
	if r := run(""); r.code != 2 || !strings.Contains(r.stderr, "RAMPART_TOKEN") {
		t.Fatalf("export without a token: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}
