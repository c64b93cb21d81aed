package devidp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Test identities. The passwords and secret double as canaries: they must
// never show up in the logs.
const (
	alicePassword = "alice-pw-Canary1"
	bobPassword   = "bob-pw-Canary2"
	confSecret    = "conf-secret-Canary3"
)

func testConfig(issuer string) Config {
	return Config{
		Issuer: issuer,
		Clients: []Client{
			{ID: "rampart"}, // public
			{ID: "rampart-conf", Secret: confSecret},
		},
		Users: []User{
			{Username: "alice", Password: alicePassword, Email: "alice@example.com", Name: "Alice Liddell", Groups: []string{"admins", "dev"}},
			{Username: "bob", Password: bobPassword, Email: "bob@example.com", Groups: []string{"ops"}},
		},
		PollInterval: time.Second,
	}
}

// testClock runs ahead of the wall clock by a skew the test sets.
type testClock struct{ skew atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *testClock) Advance(d time.Duration) { c.skew.Add(int64(d)) }

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one running dev IdP.
type env struct {
	srv    *Server
	issuer string
	clock  *testClock
	logs   *syncBuffer
}

// startIdP serves a dev IdP on 127.0.0.1:0 until the test ends, and checks
// afterwards that it stopped cleanly and logged no secret.
func startIdP(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{issuer: "http://" + l.Addr().String(), clock: &testClock{}, logs: &syncBuffer{}}
	cfg := testConfig(e.issuer)
	cfg.Now = e.clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.srv, err = New(cfg, logger); err != nil {
		l.Close()
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		logs := e.logs.String()
		for _, secret := range []string{alicePassword, bobPassword, confSecret} {
			if strings.Contains(logs, secret) {
				t.Errorf("a secret was logged:\n%s", logs)
			}
		}
		if t.Failed() {
			t.Logf("dev IdP logs:\n%s", logs)
		}
	})
	return e
}

// pollRecorder notes the outcome of every token endpoint response, so a
// test can see the slow_down that x/oauth2 handles silently.
type pollRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (r *pollRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil || req.URL.Path != "/oauth/token" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	outcome := "token"
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		outcome = e.Error
	}
	r.mu.Lock()
	r.seen = append(r.seen, outcome)
	r.mu.Unlock()
	return resp, nil
}

func (r *pollRecorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// relyingParty does what rampartd does: discovery with go-oidc, the device
// grant with x/oauth2 (AuthStyle explicit), ID token verification.
type relyingParty struct {
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
	polls    *pollRecorder
	ctx      context.Context // carries the recording HTTP client
}

func newRelyingParty(t *testing.T, ctx context.Context, issuer, clientID, secret string, style oauth2.AuthStyle) *relyingParty {
	t.Helper()
	rec := &pollRecorder{base: http.DefaultTransport}
	ctx = oidc.ClientContext(ctx, &http.Client{Transport: rec, Timeout: 10 * time.Second})
	prov, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := prov.Endpoint()
	if ep.DeviceAuthURL == "" {
		t.Fatal("discovery does not advertise device_authorization_endpoint")
	}
	ep.AuthStyle = style
	return &relyingParty{
		oauth: &oauth2.Config{
			ClientID: clientID, ClientSecret: secret, Endpoint: ep,
			Scopes: []string{oidc.ScopeOpenID, "profile", "email", ScopeGroups},
		},
		verifier: prov.Verifier(&oidc.Config{ClientID: clientID}),
		provider: prov,
		polls:    rec,
		ctx:      ctx,
	}
}

// pollOnce sends one token request by hand and returns the error code, or
// "token" when tokens came back.
func (rp *relyingParty) pollOnce(t *testing.T, deviceCode string) string {
	t.Helper()
	form := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {rp.oauth.ClientID},
	}
	req, err := http.NewRequestWithContext(rp.ctx, http.MethodPost, rp.oauth.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if rp.oauth.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(rp.oauth.ClientID), url.QueryEscape(rp.oauth.ClientSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error   string `json:"error"`
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	if resp.StatusCode == http.StatusOK && body.IDToken != "" {
		return "token"
	}
	return body.Error
}

// errorCode is the RFC 6749 error code of a failed x/oauth2 call.
func errorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}
