package archive

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

func nodeTLSFor(t *testing.T, tca *ca.TLSCA, id string) *ca.NodeTLS {
	t.Helper()
	key, err := ca.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := tca.Issue(api.RoleNode, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.NewNodeTLS(tca.CertPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Node n1 opens its own recordings from disk and n2's from n2's API, over
// mutual TLS with real node certificates, and nothing outside its
// recordings directory.
func TestRecordingFiles(t *testing.T) {
	tca, err := ca.NewTLSCA("c-test", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's state, as node n2 (whose API serves it) holds it.
	fsm := raftstoretest.New(t, raftstoretest.WithNodeID("n2"))
	apply := func(cmd raftstore.Command) {
		t.Helper()
		fsm.MustApply(t, cmd)
	}
	now := time.Now().UTC()
	session := func(id, node, path string) *raftstore.Session {
		apply(&raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: "u1", Login: "bob", ServerID: "srv-1", Node: node, Start: now}})
		apply(&raftstore.SessionClose{ID: id, End: now, RecordingSHA256: strings.Repeat("ab", 32), RecordingPath: path})
		_, s, _ := fsm.State().SessionByID(nil, id)
		return s
	}

	dir1, dir2, outside := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir1, "2026-03-01", "s1.cast"), "local recording")
	writeFile(t, filepath.Join(dir2, "2026-03-01", "s2.cast"), "remote recording")
	writeFile(t, filepath.Join(outside, "secret.cast"), "not a recording of this node")
	if err := os.Symlink(filepath.Join(outside, "secret.cast"), filepath.Join(dir1, "2026-03-01", "link.cast")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir1, "escape")); err != nil {
		t.Fatal(err)
	}

	// n2 serves its recordings through the real endpoint.
	n2TLS := nodeTLSFor(t, tca, "n2")
	api2 := httpapi.New(fsm, nil, slog.New(slog.DiscardHandler))
	api2.SetRecordings(New(Config{NodeID: "n2", Dir: dir2, Store: fsm, TLS: n2TLS.RaftClient}))
	ts := httptest.NewUnstartedServer(api2)
	// httptest adds a certificate of its own to a configuration without
	// one, and that one would win over GetCertificate.
	ts.TLS = n2TLS.API.Clone()
	cur, err := ts.TLS.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS.Certificates, ts.TLS.GetCertificate = []tls.Certificate{*cur}, nil
	// The impostor case makes n1 refuse n2's handshake; that is expected.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	addr2 := strings.TrimPrefix(ts.URL, "https://")
	apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "127.0.0.1:1"}, Now: now})
	apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:1", APIAddr: addr2}, Now: now})
	// n3's recorded address answers with n2's certificate.
	apply(&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n3", RaftAddr: "127.0.0.3:1", APIAddr: addr2}, Now: now})

	n1 := New(Config{NodeID: "n1", Dir: dir1, Store: fsm, TLS: nodeTLSFor(t, tca, "n1").RaftClient})
	tests := []struct {
		name    string
		session *raftstore.Session
		want    string
		wantErr string
		bad     bool
	}{
		{name: "ok/local", session: session("s1", "n1", "2026-03-01/s1.cast"), want: "local recording"},
		{name: "ok/remote-over-mtls", session: session("s2", "n2", "2026-03-01/s2.cast"), want: "remote recording"},
		{name: "fail/dot-dot", session: session("s3", "n1", "../secret.cast"), bad: true},
		{name: "fail/absolute", session: session("s4", "n1", filepath.Join(outside, "secret.cast")), bad: true},
		{name: "fail/not-clean", session: session("s5", "n1", "2026-03-01/../2026-03-01/s1.cast"), bad: true},
		{name: "fail/not-a-cast", session: session("s6", "n1", "2026-03-01/s1.json"), bad: true},
		{name: "fail/symlink-file-out", session: session("s7", "n1", "2026-03-01/link.cast"), wantErr: "open the recording of session s7"},
		{name: "fail/symlink-dir-out", session: session("s8", "n1", "escape/secret.cast"), wantErr: "open the recording of session s8"},
		{name: "fail/missing-file", session: session("s9", "n1", "2026-03-01/nope.cast"), wantErr: "no such file"},
		{name: "fail/remote-missing-file", session: session("s10", "n2", "2026-03-01/nope.cast"), wantErr: "404 Not Found: the recording of session s10 is not on node n2 any more"},
		{name: "fail/remote-traversal", session: session("s11", "n2", "../x.cast"), wantErr: "500 Internal Server Error: node n2 cannot read the recording of session s11"},
		{name: "fail/impostor-node", session: session("s12", "n3", "2026-03-01/s2.cast"), wantErr: `is node "n2", not node "n3"`},
		{name: "fail/removed-node", session: session("s13", "n5", "2026-03-01/s2.cast"), wantErr: "node n5 is no longer a member"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := n1.Open(context.Background(), tc.session)
			if tc.want != "" {
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				b, err := io.ReadAll(rc)
				if err != nil || string(b) != tc.want {
					t.Fatalf("read %q, %v", b, err)
				}
				return
			}
			if err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				t.Fatalf("opened %q", b)
			}
			if tc.bad && !errors.Is(err, errBadRecordingPath) {
				t.Fatalf("error %v, want errBadRecordingPath", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q lacks %q", err, tc.wantErr)
			}
		})
	}
}

// Start records under the archive's directory, Close names the file
// relative to it with the SHA-256 of what is on disk, and the spec's
// failure policy reaches the recorder: a directory that cannot be created
// fails the start when the project fails closed, and gives an unrecorded
// session, reported once, when it fails open.
func TestStart(t *testing.T) {
	t.Run("ok/recorded", func(t *testing.T) {
		dir := t.TempDir()
		a := New(Config{Dir: dir, NodeID: "n1"})
		rec, err := a.Start(Spec{Name: "s-abc-2", Width: 100, Height: 30, Term: "xterm", Failed: func(err error) { t.Errorf("failed: %v", err) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.Output([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		sum, path, err := rec.Close()
		if err != nil {
			t.Fatal(err)
		}
		if filepath.IsAbs(path) || filepath.Base(path) != "s-abc-2.cast" {
			t.Fatalf("path %q, want a relative path to s-abc-2.cast", path)
		}
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Fatalf("sha256 %s does not match the file", sum)
		}
		if !strings.Contains(string(b), `"width":100`) || !strings.Contains(string(b), "hello") {
			t.Fatalf("recording %q", b)
		}
	})
	// A regular file where the directory should be: no file can be made
	// under it, even as root.
	notADir := filepath.Join(t.TempDir(), "file")
	writeFile(t, notADir, "")
	t.Run("fail/closed-cannot-create", func(t *testing.T) {
		a := New(Config{Dir: notADir})
		if _, err := a.Start(Spec{Name: "s-1", Failed: func(err error) { t.Errorf("reported as well: %v", err) }}); !errors.Is(err, recording.ErrRecordingFailed) {
			t.Fatalf("Start: %v, want ErrRecordingFailed", err)
		}
	})
	t.Run("ok/open-cannot-create", func(t *testing.T) {
		var reported []error
		a := New(Config{Dir: notADir})
		rec, err := a.Start(Spec{Name: "s-1", FailOpen: true, Failed: func(err error) { reported = append(reported, err) }})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := rec.Output([]byte("x")); err != nil {
			t.Fatalf("Output: %v", err)
		}
		if _, path, _ := rec.Close(); path != "" {
			t.Fatalf("path %q, want none", path)
		}
		if len(reported) != 1 || !errors.Is(reported[0], recording.ErrRecordingFailed) {
			t.Fatalf("reported %v, want one ErrRecordingFailed", reported)
		}
	})
}
