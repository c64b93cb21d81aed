package frontdoor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

type nopAudit struct {
	mu     sync.Mutex
	events []string
	fields []map[string]string
}

func (a *nopAudit) Record(typ, actor string, fields map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, typ+" "+actor+" "+fields["reason"])
	a.fields = append(a.fields, fields)
}

func (a *nopAudit) has(prefix string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// testIdP is a dev IdP on a real loopback listener with a movable clock.
type testIdP struct {
	issuer string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	offset time.Duration
}

func (i *testIdP) now() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return time.Now().Add(i.offset)
}

func (i *testIdP) advance(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.offset += d
}

func (i *testIdP) stop() {
	i.cancel()
	<-i.done
}

var devUsers = []devidp.User{
	{Username: "alice", Password: "alice-pw", Email: "alice@example.com", Groups: []string{"eng", "rampart-admins"}},
	{Username: "bob", Password: "bob-pw", Email: "bob@example.com", Groups: []string{"eng"}},
	{Username: "mallory-root", Password: "pw", Email: "m@example.com", UsernameClaim: "root"},
	{Username: "mallory-dots", Password: "pw", Email: "m@example.com", UsernameClaim: "../x"},
	{Username: "mallory-newline", Password: "pw", Email: "m@example.com", UsernameClaim: "eve\nroot"},
	{Username: "mallory-space", Password: "pw", Email: "m@example.com", UsernameClaim: "eve smith"},
	{Username: "mallory-long", Password: "pw", Email: "m@example.com", UsernameClaim: strings.Repeat("e", 200)},
}

func startIdP(t *testing.T, mod func(*devidp.Config)) *testIdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIdP{issuer: "http://" + ln.Addr().String(), done: make(chan struct{})}
	cfg := devidp.Config{Issuer: idp.issuer, Clients: []devidp.Client{{ID: "rampart"}}, Users: devUsers,
		PollInterval: time.Second, Now: idp.now}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := devidp.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	idp.cancel = cancel
	go func() {
		defer close(idp.done)
		_ = srv.Serve(ctx, ln)
	}()
	t.Cleanup(idp.stop)
	return idp
}

// door is a front door under test with what it runs on.
type door struct {
	srv   *Server
	addr  string
	store *raftstoretest.Store
	svc   *login.Service
	audit *nopAudit
}

type doorOpts struct {
	issuer  string
	claims  login.ClaimMapping
	perIP   int
	modConf func(*Config)
	// flow, when set, wraps (or replaces) the provider's device flow.
	flow func(DeviceFlow) DeviceFlow
	// logger, when set, receives the front door's logs.
	logger *slog.Logger
	// now, when set, is the front door's clock.
	now func() time.Time
}

func startDoor(t *testing.T, o doorOpts) *door { return startDoorTB(t, o) }

func startDoorB(b *testing.B) *door {
	return startDoorTB(b, doorOpts{issuer: "http://127.0.0.1:1", perIP: 256})
}

func newKeyB(b *testing.B) gossh.Signer { return newKeyTB(b) }

func loginBindInfo() login.BindInfo { return login.BindInfo{ClientVersion: "bench"} }

func startDoorTB(t testing.TB, o doorOpts) *door {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	st := raftstoretest.New(t)
	logger := slog.New(slog.DiscardHandler)
	if o.logger != nil {
		logger = o.logger
	}
	svc := login.NewService(st, time.Hour, logger)
	if o.claims.AdminGroup == "" {
		o.claims.AdminGroup = "rampart-admins"
	}
	prov := login.NewProvider(login.OIDCConfig{Issuer: o.issuer, ClientID: "rampart", Claims: o.claims}, logger)
	cfg := Config{HostSigners: []gossh.Signer{hostKey}, JumpHost: "bastion.test:2222", AdminGroup: o.claims.AdminGroup,
		MaxPreauth: 64, MaxPreauthPerIP: o.perIP, AuthTimeout: time.Minute}
	if o.modConf != nil {
		o.modConf(&cfg)
	}
	audit := &nopAudit{}
	var flow DeviceFlow = prov
	if o.flow != nil {
		flow = o.flow(prov)
	}
	s := New(cfg, svc, flow, st.State, audit, logger)
	if o.now != nil {
		s.now = o.now
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return &door{srv: s, addr: ln.Addr().String(), store: st, svc: svc, audit: audit}
}

func newKey(t *testing.T) gossh.Signer { return newKeyTB(t) }

func newKeyTB(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var completeURL = regexp.MustCompile(`https?://\S+user_code=[A-Z-]+`)

// client is one sign-in attempt by an x/crypto client. When the instruction
// arrives, onPrompt runs (it drives the IdP's pages like a person).
type client struct {
	key      gossh.Signer // nil: keyboard-interactive only
	user     string
	onPrompt func(url string) error

	mu          sync.Mutex
	instruction string
	banners     []string
	promptErr   error
	prompted    bool
}

func (c *client) banner() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.banners, "")
}

func (c *client) dial(t *testing.T, addr string) (*gossh.Client, error) {
	t.Helper()
	var methods []gossh.AuthMethod
	if c.key != nil {
		methods = append(methods, gossh.PublicKeys(c.key))
	}
	methods = append(methods, gossh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		c.mu.Lock()
		c.instruction, c.prompted = instruction, true
		c.mu.Unlock()
		if len(questions) != 0 {
			return nil, fmt.Errorf("unexpected %d prompts", len(questions))
		}
		url := completeURL.FindString(instruction)
		if c.onPrompt != nil {
			// Approve from another goroutine, as a person would while ssh waits.
			go func() {
				err := c.onPrompt(url)
				c.mu.Lock()
				c.promptErr = err
				c.mu.Unlock()
			}()
		}
		return []string{}, nil
	}))
	user := c.user
	if user == "" {
		user = "alice"
	}
	cfg := &gossh.ClientConfig{
		User: user, Auth: methods, HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
		BannerCallback: func(msg string) error {
			c.mu.Lock()
			c.banners = append(c.banners, msg)
			c.mu.Unlock()
			return nil
		},
	}
	return gossh.Dial("tcp", addr, cfg)
}

// approveAs returns an onPrompt that signs in as user and approves.
func approveAs(user, password string) func(string) error {
	return func(url string) error {
		if url == "" {
			return errors.New("no verification URL in the instruction")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return devidp.NewBrowser().Approve(ctx, url, user, password)
	}
}

func denyAs(user, password string) func(string) error {
	return func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return devidp.NewBrowser().Deny(ctx, url, user, password)
	}
}

// run runs a command on the front door and returns stdout, stderr and the
// exit status.
func run(t *testing.T, c *gossh.Client, cmd string) (string, string, int) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errOut strings.Builder
	sess.Stdout, sess.Stderr = &out, &errOut
	err = sess.Run(cmd)
	code := 0
	var ee *gossh.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitStatus()
	} else if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return out.String(), errOut.String(), code
}

// wantLogins checks rampart_logins_total: want's series (method, outcome)
// have their counts, and there are no others.
func (d *door) wantLogins(t *testing.T, want map[[2]string]float64) {
	t.Helper()
	logins := d.srv.cfg.Metrics.Logins
	for k, n := range want {
		if got := testutil.ToFloat64(logins.WithLabelValues(k[0], k[1])); got != n {
			t.Fatalf("rampart_logins_total{method=%q,outcome=%q} = %v, want %v", k[0], k[1], got, n)
		}
	}
	if got := testutil.CollectAndCount(logins); got != len(want) {
		t.Fatalf("rampart_logins_total has %d series, want %d", got, len(want))
	}
}
