package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// The harness of the /v1 admin API tests: a one-node store with a token of
// every scope and a little of everything, and a caller that checks each
// request and answer against the OpenAPI document.

// scopeSecrets are the secrets of the harness's tokens, by scope.
var scopeSecrets = map[string]string{
	raftstore.ServiceRoleAdmin:        "rps_scope-admin",
	raftstore.ServiceRoleRead:         "rps_scope-read",
	raftstore.ServiceRoleAuditor:      "rps_scope-auditor",
	raftstore.ServiceRoleProvisioning: "rps_scope-provisioning",
	raftstore.ServiceRoleApprover:     "rps_scope-approver",
}

type v1API struct {
	t      *testing.T
	ts     *httptest.Server
	srv    *Server
	store  *raftstoretest.Store
	router routers.Router
	fp     string // the seeded binding's fingerprint
}

// testKey is a deterministic ed25519 key as an authorized_keys line and its
// fingerprint.
func testKey(t *testing.T, seed byte) (string, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), ssh.FingerprintSHA256(pub)
}

func newV1API(t *testing.T) *v1API {
	t.Helper()
	now := time.Now().UTC()
	st := raftstoretest.New(t, raftstoretest.WithMembers(
		raftstore.Member{ID: "n1", RaftAddr: "127.0.0.1:8300"}, raftstore.Member{ID: "n2", RaftAddr: "127.0.0.2:8300"}))
	var cmds []raftstore.Command
	i := 0
	for scope, secret := range scopeSecrets {
		i++
		cmds = append(cmds, &raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{ID: "st-" + scope, Name: scope + "-bot",
			Hash: api.HashSecret(secret), Role: scope, CreatedBy: "alice"}, Now: now})
	}
	line, fp := testKey(t, 7)
	cmds = append(cmds,
		&raftstore.GroupUpsert{Name: "eng", GID: 20001, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.DefaultProjectSettings()}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "srv-web-1", Project: "web", Name: "web-1", Addr: "10.0.0.11", SSHPort: 22}, Now: now},
	)
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		cmds = append(cmds, &raftstore.UserUpsert{User: raftstore.User{ID: "u-" + u, Login: u, UnixName: u, Groups: []string{"eng"}}, Now: now})
	}
	cmds = append(cmds,
		&raftstore.BindingUpsert{Binding: raftstore.Binding{Fingerprint: fp, UserID: "u-bob", PublicKey: line, ExpiresAt: now.Add(8 * time.Hour)}, Now: now},
		&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-1", UserID: "u-bob", Login: "bob", ServerID: "srv-web-1", Project: "web", Node: "n1", Start: now}},
		&raftstore.SessionOpen{Session: raftstore.Session{ID: "sess-2", UserID: "u-carol", Login: "carol", ServerID: "srv-web-1", Project: "web", Node: "n1", Start: now}},
		&raftstore.SessionClose{ID: "sess-2", End: now.Add(time.Minute), EndReason: "eof"},
		&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{
			{Time: now, Type: "login.ok", Actor: "bob", Fields: map[string]string{"user": "bob"}},
			{Time: now, Type: "session.open", Actor: "bob", Fields: map[string]string{"session": "sess-1", "server": "srv-web-1", "project": "web"}},
			{Time: now, Type: "session.open", Actor: "carol", Fields: map[string]string{"session": "sess-2", "server": "srv-web-1", "project": "web"}},
		}},
	)
	st.MustApply(t, cmds...)
	h := New(st, nil, slog.New(slog.DiscardHandler))
	h.SetControl(control.New(control.Deps{Store: st, Members: st, Auditor: control.StoreAuditor{Store: st}, Targets: targetaddr.Rule{}}))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Cleanup(h.touchWG.Wait)
	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: ts.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &v1API{t: t, ts: ts, srv: h, store: st, router: router, fp: fp}
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// v1Answer is an answer of the API.
type v1Answer struct {
	status int
	header http.Header
	body   []byte
}

// code is the error code of an error answer.
func (a v1Answer) code() string {
	var e api.Error
	_ = json.Unmarshal(a.body, &e)
	return e.Code
}

// call makes a request with the token of scope ("" for none). Every answer
// is checked against the document; the request too when checkReq is set (a
// test of a refused request sends what the document forbids on purpose).
func (a *v1API) call(scope, method, path, body string, checkReq bool) v1Answer {
	t := a.t
	t.Helper()
	req, err := http.NewRequest(method, a.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if scope != "" {
		req.Header.Set("Authorization", "Bearer "+scopeSecrets[scope])
	}
	route, params, err := a.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the OpenAPI document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if checkReq {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Fatalf("%s %s: the request does not match the document: %v", method, path, err)
		}
		req.Body = io.NopCloser(strings.NewReader(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(b)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Fatalf("%s %s: the answer (HTTP %d %s) does not match the document: %v", method, path, resp.StatusCode, b, err)
	}
	return v1Answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// lastAudit is the newest audit event.
func (a *v1API) lastAudit() *raftstore.AuditEvent {
	_, e, err := a.store.State().AuditLast(nil)
	if err != nil || e == nil {
		a.t.Fatalf("no audit event: %v", err)
	}
	return e
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}
