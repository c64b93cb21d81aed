package frontdoor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/login"
)

func TestSourceOf(t *testing.T) {
	cases := []struct {
		name, addr, want string
	}{
		{name: "ok/ipv4", addr: "192.0.2.7:4242", want: "192.0.2.7"},
		{name: "ok/ipv4-mapped", addr: "[::ffff:192.0.2.7]:4242", want: "192.0.2.7"},
		{name: "ok/ipv6-is-its-64", addr: "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:22", want: "2001:db8:1:2::/64"},
		{name: "ok/ipv6-loopback", addr: "[::1]:22", want: "::/64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ta, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := sourceOf(ta); got != tc.want {
				t.Fatalf("sourceOf(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}

// TestPreauthLimitCountsIPv6Per64: one host's /64 holds 2^64 addresses;
// they share one source's slots.
func TestPreauthLimitCountsIPv6Per64(t *testing.T) {
	l := newPreauthLimiter(100, 2, 1)
	src := func(a string) string { ta, _ := net.ResolveTCPAddr("tcp", a); return sourceOf(ta) }
	for i, a := range []string{"[2001:db8:0:1::1]:1", "[2001:db8:0:1::2]:1"} {
		if !l.acquire(src(a)) {
			t.Fatalf("connection %d from the /64 refused below the limit", i)
		}
	}
	if l.acquire(src("[2001:db8:0:1:ffff::3]:1")) {
		t.Fatal("a third address of the same /64 took a slot beyond the per-source limit")
	}
	if !l.acquire(src("[2001:db8:0:2::1]:1")) {
		t.Fatal("another /64 was refused")
	}
	if !l.acquireFlow(src("[2001:db8:0:1::1]:1")) || l.acquireFlow(src("[2001:db8:0:1::9]:1")) {
		t.Fatal("device flows are not counted per /64")
	}
}

// waitClosedByServer reads from nc until the server closes it; it fails if
// the server holds it for longer than within.
func waitClosedByServer(t *testing.T, nc net.Conn, within time.Duration) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, nc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still holds a silent connection after %s", within)
	}
}

// TestHandshakeDeadlineFreesSlots: connections that never ask to
// authenticate (silent, or only a version line) give their slot back after
// the handshake timeout, not after the long device-flow wait.
func TestHandshakeDeadlineFreesSlots(t *testing.T) {
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 2, modConf: func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.AuthTimeout = time.Hour
	}})
	silent, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	versionOnly, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer versionOnly.Close()
	if _, err := versionOnly.Write([]byte("SSH-2.0-silent\r\n")); err != nil {
		t.Fatal(err)
	}
	waitClosedByServer(t, silent, 10*time.Second)
	waitClosedByServer(t, versionOnly, 10*time.Second)

	// Both slots are free again: a new connection gets the version line.
	nc, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 64)); err != nil {
		t.Fatalf("connection after the silent ones timed out not admitted: %v", err)
	}
}

// blockingSigner is a key whose signature never comes, like a person who
// never types their passphrase.
type blockingSigner struct {
	gossh.Signer
	release chan struct{}
}

func (b blockingSigner) Sign(r io.Reader, data []byte) (*gossh.Signature, error) {
	<-b.release
	return nil, errors.New("released")
}

// TestStalledAuthenticationIsBounded: a client that asks to authenticate and
// then stalls before any device flow is closed after the handshake timeout
// counted from its first request.
func TestStalledAuthenticationIsBounded(t *testing.T) {
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 4, modConf: func(c *Config) {
		c.HandshakeTimeout = 500 * time.Millisecond
		c.AuthTimeout = time.Hour
	}})
	release := make(chan struct{})
	defer close(release)
	signer := blockingSigner{Signer: newKey(t), release: release}
	cfg := &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: gossh.InsecureIgnoreHostKey()}
	nc, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The client stays stuck in Sign; its reader sees the server close.
	wc := &watchedConn{Conn: nc, ended: make(chan struct{})}
	go func() {
		if c, _, _, err := gossh.NewClientConn(wc, d.addr, cfg); err == nil {
			c.Close()
		}
	}()
	select {
	case <-wc.ended:
	case <-time.After(15 * time.Second):
		t.Fatal("a client stalled in authentication still holds its connection after 15s")
	}
}

// watchedConn closes ended when a read fails: the server closed.
type watchedConn struct {
	net.Conn
	once  sync.Once
	ended chan struct{}
}

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.once.Do(func() { close(w.ended) })
	}
	return n, err
}

// countingFlow counts device flows whose Wait (the polling) is running.
type countingFlow struct {
	DeviceFlow
	mu      sync.Mutex
	active  int
	started int
	// hold, when set, keeps Wait running after its context ends until it
	// is closed: a poll still in flight.
	hold chan struct{}
}

func (f *countingFlow) Start(ctx context.Context) (*login.DeviceAuth, error) {
	f.mu.Lock()
	f.started++
	f.mu.Unlock()
	if f.DeviceFlow == nil {
		return &login.DeviceAuth{UserCode: "BCDF-GHJK", VerificationURI: "http://idp.test/device",
			VerificationURIComplete: "http://idp.test/device?user_code=BCDF-GHJK", Expiry: time.Now().Add(time.Minute)}, nil
	}
	return f.DeviceFlow.Start(ctx)
}

func (f *countingFlow) Wait(ctx context.Context, da *login.DeviceAuth) (*login.Identity, error) {
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if f.hold != nil {
		<-f.hold
		return nil, login.ErrIdPFailed
	}
	return f.DeviceFlow.Wait(ctx, da)
}

func (f *countingFlow) counts() (active, started int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active, f.started
}

// waitCond waits until cond holds, failing the test after timeout.
func waitCond(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// abandonAtPrompt starts a sign-in, answers the device flow's instruction as
// ssh does, and disconnects once polling runs (waiting reports it), as a
// person closing the terminal would. It returns the banner text the client
// saw.
func abandonAtPrompt(t *testing.T, addr string, waiting func() bool) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var banner strings.Builder
	cfg := &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		BannerCallback: func(m string) error { banner.WriteString(m); return nil },
		Auth: []gossh.AuthMethod{gossh.PublicKeys(newKey(t)), gossh.KeyboardInteractive(func(_, instruction string, _ []string, _ []bool) ([]string, error) {
			if !strings.Contains(instruction, "user_code=") {
				return nil, errors.New("no sign-in link in the instruction")
			}
			go func() {
				for deadline := time.Now().Add(10 * time.Second); !waiting() && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				nc.Close()
			}()
			return []string{}, nil
		})}}
	if c, _, _, err := gossh.NewClientConn(nc, addr, cfg); err == nil {
		c.Close()
		t.Fatal("an abandoned sign-in got in")
	}
	return banner.String()
}

// TestAbandonedDeviceFlowStopsPolling: a client that leaves while its device
// flow waits takes the polling of the IdP with it.
func TestAbandonedDeviceFlowStopsPolling(t *testing.T) {
	idp := startIdP(t, nil)
	flow := &countingFlow{}
	d := startDoor(t, doorOpts{issuer: idp.issuer, perIP: 16, flow: func(p DeviceFlow) DeviceFlow { flow.DeviceFlow = p; return flow }})
	abandonAtPrompt(t, d.addr, func() bool { a, _ := flow.counts(); return a == 1 })
	if _, started := flow.counts(); started != 1 {
		t.Fatalf("%d device flows started, want 1", started)
	}
	// The dev IdP's code lives 5 minutes; polling must stop long before.
	waitCond(t, 10*time.Second, "the abandoned device flow stops polling", func() bool { a, _ := flow.counts(); return a == 0 })
	waitCond(t, 10*time.Second, "the abandoned sign-in is audited", func() bool { return d.audit.has("login.fail  client disconnected") })
}

// TestDeviceFlowCapPerSource: flows still polling count against their
// source, even after their connections closed.
func TestDeviceFlowCapPerSource(t *testing.T) {
	flow := &countingFlow{hold: make(chan struct{})}
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 16,
		modConf: func(c *Config) { c.MaxDeviceFlowsPerIP = 2 },
		flow:    func(DeviceFlow) DeviceFlow { return flow }})
	for i := 1; i <= 2; i++ {
		abandonAtPrompt(t, d.addr, func() bool { a, _ := flow.counts(); return a == i })
	}
	waitCond(t, 10*time.Second, "two flows polling", func() bool { a, _ := flow.counts(); return a == 2 })
	m := d.srv.cfg.Metrics
	if got := testutil.ToFloat64(m.DeviceFlows); got != 2 {
		t.Fatalf("rampart_device_flows_pending = %v with two flows polling", got)
	}
	banner := abandonAtPrompt(t, d.addr, func() bool { return true })
	if got := testutil.ToFloat64(m.Refusals.WithLabelValues("device_flows_per_source")); got != 1 {
		t.Fatalf(`rampart_ssh_refusals_total{limit="device_flows_per_source"} = %v, want 1`, got)
	}
	if _, started := flow.counts(); started != 2 {
		t.Fatal("a third device flow started while two still poll")
	}
	if !strings.Contains(banner, "too many sign-ins") {
		t.Fatalf("banner %q does not say there are too many sign-ins", banner)
	}
	if !d.audit.has("login.refuse  too many device flows") {
		t.Fatal("the refusal is not audited")
	}
	close(flow.hold)
	waitCond(t, 10*time.Second, "the held flows end", func() bool { a, _ := flow.counts(); return a == 0 })
	waitCond(t, 10*time.Second, "rampart_device_flows_pending back to 0", func() bool { return testutil.ToFloat64(m.DeviceFlows) == 0 })
	abandonAtPrompt(t, d.addr, func() bool { return true })
	if _, started := flow.counts(); started != 3 {
		t.Fatalf("no device flow started once the others ended (%d started)", started)
	}
}

// recordingHandler keeps the messages and attributes logged through it.
type recordingHandler struct {
	mu      sync.Mutex
	records []map[string]any
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, m)
	return nil
}

func (h *recordingHandler) matching(prefix string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.records {
		if strings.HasPrefix(r["msg"].(string), prefix) {
			out = append(out, r)
		}
	}
	return out
}

// TestRefusalLogsAreRateLimited: a flood of refused connections writes a
// few log lines, and the next one says how many were left out.
func TestRefusalLogsAreRateLimited(t *testing.T) {
	rec := &recordingHandler{}
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 1, logger: slog.New(rec), now: now})
	held, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_ = held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Read(make([]byte, 64)); err != nil {
		t.Fatalf("first connection not admitted: %v", err)
	}
	refuse := func(n int) {
		for i := 0; i < n; i++ {
			nc, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Read(make([]byte, 64)); err == nil {
				t.Fatal("a connection beyond the per-source limit was admitted")
			}
			nc.Close()
		}
	}
	refuse(100)
	const msg = "refused connection"
	if got := len(rec.matching(msg)); got != refusalLogBurst {
		t.Fatalf("%d log lines for 100 refused connections at one instant, want %d", got, refusalLogBurst)
	}
	mu.Lock()
	clock = clock.Add(refusalLogEvery)
	mu.Unlock()
	refuse(1)
	lines := rec.matching(msg)
	if len(lines) != refusalLogBurst+1 {
		t.Fatalf("%d log lines, want %d", len(lines), refusalLogBurst+1)
	}
	if got := lines[len(lines)-1]["suppressed"]; got != int64(100-refusalLogBurst) {
		t.Fatalf("suppressed = %v, want %d", got, 100-refusalLogBurst)
	}
}
