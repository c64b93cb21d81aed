package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

func TestInstallScript(t *testing.T) {
	srv := New(applyAll(t), nil, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/install.sh", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/x-shellscript") {
		t.Fatalf("HTTP %d, %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	script := rec.Body.String()
	for _, want := range []string{"#!/usr/bin/env bash\n", "rampartd " + api.Version, "MARKER=" + api.DisableAutostartFile + "\n",
		"grep -i '^" + api.AgentSHA256Header + ":'", "ConditionPathExists=!$MARKER"} {
		if !strings.Contains(script, want) {
			t.Errorf("install.sh lacks %q", want)
		}
	}
	if strings.Contains(script, "{{") || strings.Contains(script, "<no value>") {
		t.Error("install.sh has unrendered template parts")
	}
	path := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n install.sh: %v\n%s", err, out)
	}
	// Refusals that come before anything is fetched (not as root, or with
	// a bad argument, it stops at once).
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fail/unknown-option", []string{"--frobnicate"}, "unknown option --frobnicate"},
		{"fail/missing-value", []string{"--token-file"}, "--token-file needs a value"},
		{"ok/help", []string{"--help"}, "Usage: install.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("bash", append([]string{path}, tc.args...)...).CombinedOutput()
			if strings.HasPrefix(tc.name, "ok/") != (err == nil) || !strings.Contains(string(out), tc.want) {
				t.Fatalf("install.sh %v: %v\n%s", tc.args, err, out)
			}
		})
	}
}

func TestTLSCAEndpoint(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name   string
		cmds   []raftstore.Command
		status int
		want   string
	}{
		{"ok/initialised", []raftstore.Command{&raftstore.ClusterInit{ClusterID: "c-test", Now: time.Now(), UIDStart: 60001, UIDEnd: 62999, GIDStart: 63001, GIDEnd: 65533,
			TLSCACert: string(pki.ca.CertPEM), TLSCAKeySealed: []byte("sealed")}}, 200, string(pki.ca.CertPEM)},
		{"fail/not-initialised", nil, 503, "not initialised"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := New(applyAll(t, tc.cmds...), nil, slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/ca/tls", nil))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("HTTP %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.status, tc.want)
			}
		})
	}
}

// copyFile copies src to dst (mode 0755).
func copyFile(t *testing.T, src, dst string) []byte {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAgentBinaryEndpoint(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("agent binaries are linux ELF files; this test copies its own executable as one")
	}
	// This test's own executable is an ELF binary for this platform: it
	// stands in for rampart-agent.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	dir := t.TempDir()
	named := copyFile(t, self, filepath.Join(dir, "rampart-agent-linux-"+runtime.GOARCH))
	// Named for another architecture but built for this one: refused.
	copyFile(t, self, filepath.Join(dir, "rampart-agent-linux-"+other))
	if err := os.WriteFile(filepath.Join(dir, "rampart-agent-linux-riscv64"), []byte("#!/bin/sh\necho not ELF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plainDir := t.TempDir()
	plain := copyFile(t, self, filepath.Join(plainDir, "rampart-agent"))

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv := New(applyAll(t), nil, logger)
	srv.SetAgentBinaryDir(dir)
	plainSrv := New(applyAll(t), nil, logger)
	plainSrv.SetAgentBinaryDir(plainDir)
	emptySrv := New(applyAll(t), nil, logger)
	emptySrv.SetAgentBinaryDir(t.TempDir())

	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	tests := []struct {
		name   string
		srv    *Server
		query  string
		status int
		body   []byte
		want   string
	}{
		{name: "ok/named", srv: srv, query: "os=linux&arch=" + runtime.GOARCH, status: 200, body: named},
		{name: "ok/os-defaults-to-linux", srv: srv, query: "arch=" + runtime.GOARCH, status: 200, body: named},
		{name: "ok/plain-for-own-platform", srv: plainSrv, query: "os=linux&arch=" + runtime.GOARCH, status: 200, body: plain},
		{name: "fail/plain-is-not-for-others", srv: plainSrv, query: "os=linux&arch=" + other, status: 404, want: "no agent binary for linux/" + other + " (it has: " + runtime.GOARCH + ")"},
		{name: "fail/built-for-another-arch", srv: srv, query: "os=linux&arch=" + other, status: 404, want: "no agent binary for linux/" + other},
		{name: "fail/not-elf", srv: srv, query: "os=linux&arch=riscv64", status: 404, want: "no agent binary for linux/riscv64"},
		{name: "fail/none-at-all", srv: emptySrv, query: "os=linux&arch=" + runtime.GOARCH, status: 404, want: "put rampart-agent-linux-" + runtime.GOARCH + " beside rampartd"},
		{name: "fail/unknown-arch", srv: srv, query: "os=linux&arch=sparc", status: 404, want: "not a supported architecture"},
		{name: "fail/path-traversal", srv: srv, query: "os=linux&arch=../../../etc/passwd", status: 404, want: "not a supported architecture"},
		{name: "fail/os", srv: srv, query: "os=windows&arch=amd64", status: 404, want: "runs on linux only"},
		{name: "fail/os-traversal", srv: srv, query: "os=../linux&arch=amd64", status: 404, want: "runs on linux only"},
		{name: "fail/no-arch", srv: srv, query: "os=linux", status: 400, want: "arch is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/agents/binary?"+tc.query, nil))
			if rec.Code != tc.status {
				t.Fatalf("HTTP %d %.200q, want %d", rec.Code, rec.Body.String(), tc.status)
			}
			if tc.status != 200 {
				var e api.Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %q, want %q", rec.Body.String(), tc.want)
				}
				return
			}
			if !bytes.Equal(rec.Body.Bytes(), tc.body) {
				t.Fatalf("served %d bytes, not the binary (%d bytes)", rec.Body.Len(), len(tc.body))
			}
			if got := rec.Header().Get(api.AgentSHA256Header); got != sum(tc.body) {
				t.Fatalf("%s = %q, want %s", api.AgentSHA256Header, got, sum(tc.body))
			}
		})
	}
	if !strings.Contains(logs.String(), "agent binary unusable") || !strings.Contains(logs.String(), "rampart-agent-linux-"+other) {
		t.Errorf("the misnamed binary was not logged:\n%s", logs.String())
	}

	// A replaced binary is fingerprinted again.
	t.Run("ok/replaced-binary", func(t *testing.T) {
		path := filepath.Join(dir, "rampart-agent-linux-"+runtime.GOARCH)
		changed := append(bytes.Clone(named), "appended"...)
		if err := os.WriteFile(path, changed, 0o755); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/agents/binary?os=linux&arch="+runtime.GOARCH, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || !bytes.Equal(body, changed) || rec.Header().Get(api.AgentSHA256Header) != sum(changed) {
			t.Fatalf("HTTP %d, %d bytes, sum %s; want the new binary with sum %s", rec.Code, len(body), rec.Header().Get(api.AgentSHA256Header), sum(changed))
		}
	})
}
