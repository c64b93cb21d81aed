package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// memRecordings serves files by recorded path; a path with ".." fails as the
// node's own check does.
type memRecordings map[string]string

func (m memRecordings) OpenLocal(s *raftstore.Session) (io.ReadCloser, error) {
	if strings.Contains(s.RecordingPath, "..") {
		return nil, errors.New("bad recording path /var/lib/rampart/recordings/" + s.RecordingPath)
	}
	data, ok := m[s.RecordingPath]
	if !ok {
		return nil, fmt.Errorf("open: %w", fs.ErrNotExist)
	}
	return io.NopCloser(strings.NewReader(data)), nil
}

func (m memRecordings) OpenHeld(h raftstore.RecordingHolder) (io.ReadCloser, error) {
	data, ok := m[h.Path]
	if !ok {
		return nil, fmt.Errorf("open: %w", fs.ErrNotExist)
	}
	return io.NopCloser(strings.NewReader(data)), nil
}

func (m memRecordings) Receive(context.Context, string, string, string, io.Reader, func() string) (*replica.Received, error) {
	return nil, errors.New("not in this test")
}

func (m memRecordings) OpenVerified(context.Context, *raftstore.Session) (*replica.Copy, error) {
	return nil, replica.ErrNoCopy
}

// testPKI is a cluster TLS CA issuing node and agent certificates.
type testPKI struct {
	t  *testing.T
	ca *ca.TLSCA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	c, err := ca.NewTLSCA("c-test", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, ca: c}
}

func (p *testPKI) pair(role, id string) (certPEM, keyPEM []byte) {
	p.t.Helper()
	key, err := ca.NewNodeKey()
	if err != nil {
		p.t.Fatal(err)
	}
	certPEM, err = p.ca.Issue(role, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	keyPEM, err = api.EncodeKeyPEM(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return certPEM, keyPEM
}

func (p *testPKI) nodeTLS(id string) *ca.NodeTLS {
	p.t.Helper()
	certPEM, keyPEM := p.pair(api.RoleNode, id)
	n, err := ca.NewNodeTLS(p.ca.CertPEM, certPEM, keyPEM)
	if err != nil {
		p.t.Fatal(err)
	}
	return n
}

// serverTLS is node id's API configuration for an httptest server, with its
// certificate in Certificates: httptest adds a certificate of its own to a
// configuration that has none, and that one would win over GetCertificate.
func (p *testPKI) serverTLS(id string) *tls.Config {
	p.t.Helper()
	cfg := p.nodeTLS(id).API.Clone()
	cur, err := cfg.GetCertificate(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	cfg.Certificates, cfg.GetCertificate = []tls.Certificate{*cur}, nil
	return cfg
}

// client presents a certificate of role and id (none when role is "").
func (p *testPKI) client(role, id string) *http.Client {
	p.t.Helper()
	cfg := &tls.Config{RootCAs: p.nodeTLS("n-root").Pool, MinVersion: tls.VersionTLS12}
	if role != "" {
		certPEM, keyPEM := p.pair(role, id)
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			p.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestInternalRecordings(t *testing.T) {
	now := time.Now().UTC()
	open := func(id, node string) raftstore.Command {
		return &raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: "u1", Login: "bob", ServerID: "srv-1", Node: node, Start: now}}
	}
	closed := func(id, path string) raftstore.Command {
		return &raftstore.SessionClose{ID: id, End: now, RecordingSHA256: strings.Repeat("ab", 32), RecordingPath: path}
	}
	f := applyAll(t,
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "127.0.0.1:8300"}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.2:8300"}, Now: now},
		open("s-ok", "n1"), closed("s-ok", "2026-03-01/s-ok.cast"),
		open("s-other", "n3"), closed("s-other", "2026-03-01/s-other.cast"),
		open("s-live", "n1"),
		open("s-gone", "n1"), closed("s-gone", "2026-03-01/s-gone.cast"),
		open("s-evil", "n1"), closed("s-evil", "../../etc/shadow.cast"),
		open("s-copy", "n3"), closed("s-copy", "2026-03-01/s-copy.cast"),
		&raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{Name: "s-copy", Session: "s-copy", Node: "n1",
			Path: "replicas/2026-03-02/s-copy.cast", SHA256: strings.Repeat("cd", 32), Bytes: 9, At: now}},
	)
	pki := newTestPKI(t)
	srv := New(f, nil, slog.New(slog.DiscardHandler))
	srv.SetRecordings(memRecordings{"2026-03-01/s-ok.cast": "{\"version\":2}\n[0.1,\"o\",\"hi\"]\n",
		"replicas/2026-03-02/s-copy.cast": "{\"version\":2}\n[0.2,\"o\",\"copied\"]\n"})
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)

	tests := []struct {
		name       string
		client     *http.Client
		session    string
		status     int
		want       string
		notWant    string
		wantHeader string
	}{
		{name: "ok/member-node", client: pki.client(api.RoleNode, "n2"), session: "s-ok", status: 200, want: "[0.1,\"o\",\"hi\"]", wantHeader: "application/x-asciicast"},
		{name: "fail/no-certificate", client: pki.client("", ""), session: "s-ok", status: 401, want: "node certificate is required"},
		{name: "fail/agent-certificate", client: pki.client(api.RoleAgent, "srv-1"), session: "s-ok", status: 403, want: "node certificate is required"},
		{name: "fail/removed-node", client: pki.client(api.RoleNode, "n9"), session: "s-ok", status: 403, want: `node "n9" is not a member`},
		{name: "ok/held-copy-of-another-nodes-session", client: pki.client(api.RoleNode, "n2"), session: "s-copy", status: 200, want: "copied"},
		{name: "fail/other-node", client: pki.client(api.RoleNode, "n2"), session: "s-other", status: 404, want: "node n1 holds no recording"},
		{name: "fail/still-running", client: pki.client(api.RoleNode, "n2"), session: "s-live", status: 404, want: "no finished recording"},
		{name: "fail/unknown-session", client: pki.client(api.RoleNode, "n2"), session: "s-nope", status: 404, want: `holds no recording "s-nope"`},
		{name: "fail/file-gone", client: pki.client(api.RoleNode, "n2"), session: "s-gone", status: 404, want: "not on node n1 any more"},
		{name: "fail/path-traversal", client: pki.client(api.RoleNode, "n2"), session: "s-evil", status: 500, want: "cannot read the recording", notWant: "/var/lib"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(ts.URL + "/v1/internal/recordings/" + tc.session)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			text := string(body)
			if resp.StatusCode != http.StatusOK {
				var e api.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("HTTP %d: error body is not an api.Error: %q", resp.StatusCode, body)
				}
				text = e.Error
			}
			if resp.StatusCode != tc.status || !strings.Contains(text, tc.want) || (tc.notWant != "" && strings.Contains(text, tc.notWant)) {
				t.Fatalf("HTTP %d %q, want %d with %q", resp.StatusCode, text, tc.status, tc.want)
			}
			if tc.wantHeader != "" && resp.Header.Get("Content-Type") != tc.wantHeader {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// Without SetRecordings the endpoint does not exist.
func TestInternalRecordingsNotServed(t *testing.T) {
	f := applyAll(t)
	srv := New(f, nil, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/internal/recordings/s-ok", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("HTTP %d", rec.Code)
	}
}
